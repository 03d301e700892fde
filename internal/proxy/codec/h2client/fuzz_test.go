package h2client

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzResponseHead decodes arbitrary HPACK blocks as response heads:
// whatever they hold, decoding must not panic, and a head it accepts
// has a 3-digit status, no pseudo-header or connection-specific field
// in its header map, and a content-length it agrees with.
func FuzzResponseHead(f *testing.F) {
	seed := func(end bool, kv ...string) {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		for i := 0; i+1 < len(kv); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		f.Add(buf.Bytes(), end)
	}
	seed(false, ":status", "200", "content-type", "application/grpc")
	seed(true, ":status", "200", "grpc-status", "0", "grpc-message", "ok")
	seed(false, ":status", "200", "content-length", "10", "content-length", "10")
	seed(false, ":status", "100")
	seed(true, ":status", "204", "connection", "close")
	seed(false, "x", "y", ":status", "200")
	seed(false, ":status", "200", ":status", "201")
	f.Fuzz(func(t *testing.T, block []byte, ended bool) {
		dec := hpack.NewDecoder(4096, nil)
		dec.SetMaxStringLength(64 << 10)
		fields, err := dec.DecodeFull(block)
		if err != nil {
			return
		}
		h, err := parseResponseHead(fields, ended)
		if err != nil {
			return
		}
		if h.status < 100 || h.status > 999 {
			t.Fatalf("status %d accepted", h.status)
		}
		if h.status < 200 {
			return
		}
		for k, vv := range h.header {
			if strings.HasPrefix(k, ":") || len(vv) == 0 {
				t.Fatalf("header %q = %q", k, vv)
			}
			switch strings.ToLower(k) {
			case "connection", "transfer-encoding", "upgrade", "keep-alive", "proxy-connection":
				t.Fatalf("connection-specific %s accepted", k)
			}
		}
		if cl := h.header.Get("Content-Length"); (cl == "") != (h.declLen < 0) {
			t.Fatalf("content-length %q, declared %d", cl, h.declLen)
		}
		if ended && h.declLen > 0 {
			t.Fatalf("content-length %d on a head that ends the stream", h.declLen)
		}
	})
}

// FuzzServerFrames plays arbitrary bytes as what a server sends after its
// SETTINGS, then closes the connection: whatever they are, a request
// through the codec must end (a response whose body ends, or an error)
// without a panic.
func FuzzServerFrames(f *testing.F) {
	frames := func(fn func(fr *http2.Framer, block func(kv ...string) []byte)) {
		var buf, hbuf bytes.Buffer
		enc := hpack.NewEncoder(&hbuf)
		fr := http2.NewFramer(&buf, nil)
		fn(fr, func(kv ...string) []byte {
			hbuf.Reset()
			for i := 0; i+1 < len(kv); i += 2 {
				_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
			}
			return hbuf.Bytes()
		})
		f.Add(buf.Bytes())
	}
	frames(func(fr *http2.Framer, block func(kv ...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(":status", "200"), EndHeaders: true})
		_ = fr.WriteData(1, false, []byte("hello"))
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block("grpc-status", "0"), EndHeaders: true, EndStream: true})
	})
	frames(func(fr *http2.Framer, block func(kv ...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(":status", "100"), EndHeaders: true})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(":status", "204"), EndHeaders: true, EndStream: true})
	})
	frames(func(fr *http2.Framer, block func(kv ...string) []byte) {
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
		_ = fr.WriteWindowUpdate(1, 100)
		_ = fr.WriteRSTStream(1, http2.ErrCodeRefusedStream)
		_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		tr := &Transport{Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				go func() { _, _ = io.Copy(io.Discard, server) }()
				var settings bytes.Buffer
				_ = http2.NewFramer(&settings, nil).WriteSettings()
				_, _ = server.Write(settings.Bytes())
				_, _ = server.Write(in)
			}()
			return client, nil
		}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("POST", "http://fuzz/", strings.NewReader("body"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	})
}
