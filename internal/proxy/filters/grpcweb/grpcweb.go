// Package grpcweb is the data-plane runtime of Envoy's gRPC-Web filter
// (envoy.filters.http.grpc_web, config
// envoy.extensions.filters.http.grpc_web.v3.GrpcWeb): it turns a browser's
// gRPC-Web call into a gRPC call to the upstream and the gRPC response
// back into gRPC-Web, following the gRPC-Web protocol
// (grpc/grpc doc/PROTOCOL-WEB.md).
//
// What changes on the way, and what does not:
//   - Request headers (RequestHeaders): content-type application/grpc-web,
//     application/grpc-web+X, application/grpc-web-text and
//     application/grpc-web-text+X become application/grpc (or
//     application/grpc+X); te: trailers is set, and grpc-accept-encoding:
//     identity when the client sent none; content-length is removed,
//     since a text body shrinks when decoded.
//   - Request body (Stream.RequestBody): binary passes through untouched
//     (gRPC-Web and gRPC share the length-prefixed message framing); text
//     is base64-decoded as it streams, in 4-character quanta, so padding
//     may appear between chunks, as the protocol allows.
//   - Response headers (Stream.ResponseHeaders): content-type becomes
//     application/grpc-web+proto (or application/grpc-web-text+proto, or
//     the upstream's +X subtype); content-length is removed. A
//     trailers-only response (grpc-status in the headers) keeps its
//     grpc-status header, as the protocol allows. A response that is not
//     gRPC at all (not 200 with a gRPC content type, and no grpc-status:
//     an HTTP error from a proxy on the way, or a local reply) becomes a
//     trailers-only gRPC-Web response with the grpc-status the gRPC
//     specification maps its HTTP status to and, with NonGRPCMessage, the
//     start of its body as grpc-message, as Envoy does.
//   - Response body (Stream.ResponseBody): messages pass through; at the
//     end, the upstream's trailers are appended as one frame with flag 0x80
//     holding "name:value\r\n" lines with lower-case names. For a text
//     response every chunk is base64-encoded as it streams, padded at the
//     chunk's end (clients must accept padding between chunks).
//
// Nothing is buffered beyond one read: the translators are io.Reader
// wrappers that a stream implementation drives at its own pace, so
// server-streaming calls stream. The filter's config, GrpcWeb, has no
// fields; Decode only checks its type. Per-service stats are not emitted.
//
// Reading responses as a client (a gRPC-Web client, or a test) uses
// ReadFrame, ParseTrailer and NewTextDecoder, which are the same parsers.
package grpcweb

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	grpcwebv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/grpc_web/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// TypeURL is the filter's typed_config type URL.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb"

// Name is the filter's well-known name.
const Name = "envoy.filters.http.grpc_web"

// Content types.
const (
	ContentTypeGRPC             = "application/grpc"
	ContentTypeGRPCWeb          = "application/grpc-web"
	ContentTypeGRPCWebText      = "application/grpc-web-text"
	ContentTypeGRPCWebProto     = "application/grpc-web+proto"
	ContentTypeGRPCWebTextProto = "application/grpc-web-text+proto"
)

// Decode checks the filter's typed_config, an (empty) GrpcWeb message.
func Decode(a *anypb.Any) error {
	if a == nil {
		return errors.New("grpc_web: typed_config: missing")
	}
	if a.GetTypeUrl() != TypeURL {
		return fmt.Errorf("grpc_web: typed_config: type %q, want %q", a.GetTypeUrl(), TypeURL)
	}
	var m grpcwebv3.GrpcWeb
	if err := m.Unmarshal(a.GetValue()); err != nil {
		return fmt.Errorf("grpc_web: typed_config: %w", err)
	}
	return nil
}

// Stream is what RequestHeaders learned about one gRPC-Web call, which
// the response translation needs. The zero Stream is "not gRPC-Web".
type Stream struct {
	web          bool
	textRequest  bool
	textResponse bool
}

// IsGRPCWeb reports whether the request was a gRPC-Web call.
func (s Stream) IsGRPCWeb() bool { return s.web }

// TextRequest reports whether the request body is base64 text.
func (s Stream) TextRequest() bool { return s.textRequest }

// TextResponse reports whether the response body will be base64 text.
func (s Stream) TextResponse() bool { return s.textResponse }

// parseWebContentType splits a gRPC-Web content type into text-ness and
// the subtype after '+' (e.g. "proto"); ok is false for other types.
// Parameters (";...") are ignored.
func parseWebContentType(ct string) (text bool, sub string, ok bool) {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if len(ct) < len(ContentTypeGRPCWeb) || !strings.EqualFold(ct[:len(ContentTypeGRPCWeb)], ContentTypeGRPCWeb) {
		return false, "", false
	}
	rest := ct[len(ContentTypeGRPCWeb):]
	if len(rest) >= 5 && strings.EqualFold(rest[:5], "-text") {
		text, rest = true, rest[5:]
	}
	switch {
	case rest == "":
		return text, "", true
	case rest[0] == '+' && len(rest) > 1:
		return text, rest[1:], true
	}
	return false, "", false
}

// RequestHeaders translates a gRPC-Web request's headers into a gRPC
// request's, in place, and returns the Stream for the response. A request
// that is not gRPC-Web is left untouched (zero Stream).
func RequestHeaders(h http.Header) Stream {
	text, sub, ok := parseWebContentType(h.Get("Content-Type"))
	if !ok {
		return Stream{}
	}
	s := Stream{web: true, textRequest: text}
	accept := h.Get("Accept")
	switch {
	case containsFold(accept, ContentTypeGRPCWebText):
		s.textResponse = true
	case text && !containsFold(accept, ContentTypeGRPCWeb):
		// A text client that did not say what it accepts reads text.
		s.textResponse = true
	}
	ct := ContentTypeGRPC
	if sub != "" {
		ct += "+" + sub
	}
	h.Set("Content-Type", ct)
	h.Set("Te", "trailers")
	h.Del("Content-Length")
	if h.Get("Grpc-Accept-Encoding") == "" {
		h.Set("Grpc-Accept-Encoding", "identity")
	}
	return s
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// ResponseHeaders translates the upstream response's headers (status is
// its HTTP status) into a gRPC-Web response's, in place. It reports
// whether the body is to be translated with ResponseBody; false means the
// response was not gRPC and now is a trailers-only gRPC-Web response
// whose upstream body must be dropped. A zero Stream leaves h untouched
// and reports true (pass the body through).
func (s Stream) ResponseHeaders(status int, h http.Header) (translateBody bool) {
	if !s.web {
		return true
	}
	h.Del("Content-Length")
	sub, isGRPC := grpcSubtype(h.Get("Content-Type"))
	base := ContentTypeGRPCWeb
	if s.textResponse {
		base = ContentTypeGRPCWebText
	}
	if sub == "" {
		sub = "proto"
	}
	h.Set("Content-Type", base+"+"+sub)
	if h.Get("Grpc-Status") != "" || (status == http.StatusOK && isGRPC) {
		return true
	}
	h.Set("Grpc-Status", strconv.Itoa(HTTPStatusToGRPC(status)))
	h.Set("Grpc-Message", "")
	h.Set("Content-Length", "0")
	return false
}

// MaxNonGRPCMessage bounds how much of a non-gRPC response's body
// NonGRPCMessage reads into grpc-message, as Envoy does.
const MaxNonGRPCMessage = 16 << 10

// NonGRPCMessage sets grpc-message, in a response that ResponseHeaders
// found not to be gRPC, to the first MaxNonGRPCMessage bytes of its body,
// percent-encoded as gRPC requires, so that the browser sees why the call
// failed (an error page, a proxy's local reply). Call it before writing
// the headers; the body is then dropped.
func NonGRPCMessage(h http.Header, body io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(body, MaxNonGRPCMessage))
	if err != nil {
		return fmt.Errorf("grpc_web: reading a non-gRPC response body: %w", err)
	}
	h.Set("Grpc-Message", PercentEncode(b))
	return nil
}

// PercentEncode encodes a grpc-message value: bytes outside printable
// ASCII, and '%', become %XX.
func PercentEncode(b []byte) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		if c < 0x20 || c > 0x7e || c == '%' {
			sb.WriteByte('%')
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// grpcSubtype reports whether ct is a gRPC content type and its subtype.
func grpcSubtype(ct string) (sub string, ok bool) {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if len(ct) < len(ContentTypeGRPC) || !strings.EqualFold(ct[:len(ContentTypeGRPC)], ContentTypeGRPC) {
		return "", false
	}
	rest := ct[len(ContentTypeGRPC):]
	switch {
	case rest == "":
		return "", true
	case rest[0] == '+' && len(rest) > 1:
		return rest[1:], true
	}
	return "", false
}

// HTTPStatusToGRPC maps the HTTP status of a response that carries no
// grpc-status to one, as the gRPC specification's
// http-grpc-status-mapping says.
func HTTPStatusToGRPC(status int) int {
	switch status {
	case http.StatusBadRequest:
		return 13 // INTERNAL
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	case http.StatusNotFound:
		return 12 // UNIMPLEMENTED
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}
