package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"

	"google.golang.org/protobuf/proto"

	"github.com/meshlens/meshlens/internal/proxy/filters/grpcweb"
)

// grpcWebCall is a gRPC-Web client written from the protocol (grpc/grpc
// doc/PROTOCOL-WEB.md), as a browser's library speaks it: it frames msg,
// posts it (base64 when text), and reads the response's messages and its
// status, from the trailer frame or, for a trailers-only response, the
// headers. It uses the proxy's own frame parsers, which the grpcweb
// package tests against grpc-go.
type grpcWebCall struct {
	text bool
	// header is added to the request (Origin, x-envoy-fault-*, ...).
	header http.Header
}

// grpcWebResult is what a call got.
type grpcWebResult struct {
	header   http.Header
	messages [][]byte
	trailer  http.Header
}

// status is the call's grpc-status.
func (r grpcWebResult) status() string {
	if r.trailer != nil {
		return r.trailer.Get("Grpc-Status")
	}
	return r.header.Get("Grpc-Status")
}

// do calls url (http://gateway/package.Service/Method) with msg.
func (c grpcWebCall) do(ctx context.Context, url string, msg proto.Message) (grpcWebResult, error) {
	var res grpcWebResult
	b, err := proto.Marshal(msg)
	if err != nil {
		return res, err
	}
	body := grpcweb.AppendFrame(nil, 0, b)
	ct, wantCT := grpcweb.ContentTypeGRPCWebProto, grpcweb.ContentTypeGRPCWebProto
	if c.text {
		ct, wantCT = grpcweb.ContentTypeGRPCWebText, grpcweb.ContentTypeGRPCWebTextProto
		body = []byte(base64.StdEncoding.EncodeToString(body))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return res, err
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-Grpc-Web", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	res.header = resp.Header
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); got != wantCT {
		return res, fmt.Errorf("content-type %q, want %q", got, wantCT)
	}
	var r io.Reader = resp.Body
	if c.text {
		r = grpcweb.NewTextDecoder(resp.Body)
	}
	for {
		f, err := grpcweb.ReadFrame(r, 0)
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("reading frames: %w", err)
		}
		switch {
		case res.trailer != nil:
			return res, errors.New("a frame after the trailer frame")
		case f.Trailer():
			if res.trailer, err = grpcweb.ParseTrailer(f.Payload); err != nil {
				return res, err
			}
		default:
			res.messages = append(res.messages, f.Payload)
		}
	}
}
