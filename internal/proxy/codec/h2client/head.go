package h2client

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2frame"
)

// requestFields builds a request's header block (RFC 9113 8.3.1) and
// says how long its body is: 0 none, -1 unknown (streamed), else its
// content-length. Connection-specific fields are dropped, as a proxy
// must (RFC 9113 8.2.2).
func requestFields(req *http.Request, tls bool) ([]hpack.HeaderField, int64, error) {
	if req.URL == nil {
		return nil, 0, errors.New("h2client: request without URL")
	}
	if req.Method == http.MethodConnect {
		return nil, 0, errors.New("h2client: CONNECT is not supported upstream")
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	path := req.URL.RequestURI()
	scheme := "http"
	if tls {
		scheme = "https"
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	bodyLen := req.ContentLength
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		bodyLen = 0
	case bodyLen == 0:
		bodyLen = -1 // a body of unknown length
	}
	fields := make([]hpack.HeaderField, 0, headerFieldsCap(req.Header))
	fields = append(fields,
		hpack.HeaderField{Name: ":authority", Value: host},
		hpack.HeaderField{Name: ":method", Value: method},
		hpack.HeaderField{Name: ":path", Value: path},
		hpack.HeaderField{Name: ":scheme", Value: scheme},
	)
	for k, vv := range req.Header {
		switch k {
		case "Host", "Connection", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Keep-Alive", "Content-Length":
			continue
		case "Te":
			// Only "trailers" may be sent (RFC 9113 8.2.2).
			for _, v := range vv {
				if strings.EqualFold(strings.TrimSpace(v), "trailers") {
					fields = append(fields, hpack.HeaderField{Name: "te", Value: "trailers"})
					break
				}
			}
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, 0, fmt.Errorf("h2client: invalid request header field name %q", k)
		}
		name := h2frame.LowerName(k)
		never := neverIndexed(name)
		for _, v := range vv {
			fields = append(fields, hpack.HeaderField{Name: name, Value: v, Sensitive: never})
		}
	}
	if bodyLen > 0 || bodyLen == 0 && (method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch) {
		fields = append(fields, hpack.HeaderField{Name: "content-length", Value: strconv.FormatInt(bodyLen, 10)})
	}
	return fields, bodyLen, nil
}

// neverIndexed says which request fields are sent as literals never
// indexed: credentials (authorization, cookie), so that their values
// never enter a compression table shared with other requests, and the
// fields whose value is new in every request (the request id and the
// trace context the proxy sets), which a table would only churn on: each
// would be added, evicting an entry another request could have used, at
// both ends of the connection and at every hop after, as an intermediary
// keeps a never-indexed field never indexed.
func neverIndexed(name string) bool {
	switch name {
	case "authorization", "cookie",
		"x-request-id", "traceparent", "b3", "x-b3-traceid", "x-b3-spanid",
		"x-b3-parentspanid", "x-amzn-trace-id":
		return true
	}
	return false
}

// trailerFields are a request's trailers as a header block; nil when
// there are none.
func trailerFields(t http.Header) []hpack.HeaderField {
	var fields []hpack.HeaderField
	for k, vv := range t {
		if !httpguts.ValidTrailerHeader(k) {
			continue
		}
		name := h2frame.LowerName(k)
		for _, v := range vv {
			fields = append(fields, hpack.HeaderField{Name: name, Value: v})
		}
	}
	return fields
}

// responseHead is a decoded response head.
type responseHead struct {
	status  int
	header  http.Header
	declLen int64 // content-length, -1: none
}

// parseResponseHead checks and decodes a response header block (RFC
// 9113 8.3.2 and 8.2.2): exactly one 3-digit :status, no other
// pseudo-header field, no connection-specific field, content-length
// agreeing with itself (and absent or 0 when ended says the block ends
// the stream). A 1xx head comes back with only its status.
func parseResponseHead(fields []hpack.HeaderField, ended bool) (responseHead, error) {
	h := responseHead{declLen: -1}
	regular := 0
	for _, f := range fields {
		if !strings.HasPrefix(f.Name, ":") {
			regular++
			continue
		}
		if f.Name != ":status" {
			return h, fmt.Errorf("pseudo-header field %s in a response", f.Name)
		}
		if h.status != 0 {
			return h, errors.New("more than one :status")
		}
		if len(f.Value) != 3 {
			return h, fmt.Errorf(":status %q is not 3 digits", f.Value)
		}
		code, err := strconv.Atoi(f.Value)
		if err != nil || code < 100 {
			return h, fmt.Errorf(":status %q is not a status code", f.Value)
		}
		h.status = code
	}
	if h.status == 0 {
		return h, errors.New(":status is missing")
	}
	if h.status < 200 {
		if h.status == http.StatusSwitchingProtocols {
			return h, errors.New(":status 101 in HTTP/2")
		}
		if ended {
			return h, errors.New("an interim response ends the stream")
		}
		return h, nil
	}
	h.header = make(http.Header, regular)
	vals, i := make([]string, regular), 0
	for _, f := range fields {
		if strings.HasPrefix(f.Name, ":") {
			continue
		}
		switch f.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return h, fmt.Errorf("connection-specific header field %s", f.Name)
		case "content-length":
			n, err := strconv.ParseUint(f.Value, 10, 63)
			if err != nil || h.declLen >= 0 && int64(n) != h.declLen {
				return h, fmt.Errorf("content-length %q", f.Value)
			}
			h.declLen = int64(n)
		}
		i = h2frame.AddValue(h.header, vals, i, h2frame.CanonicalName(f.Name), f.Value)
	}
	if ended && h.declLen > 0 {
		return h, fmt.Errorf("content-length %d with no body", h.declLen)
	}
	return h, nil
}

// responseAndBody holds a response and its body, allocated together.
type responseAndBody struct {
	resp http.Response
	body body
}

// setResponseLocked makes the response of a stream from its head and
// wakes RoundTrip.
func (s *stream) setResponseLocked(h responseHead, ended bool) {
	// The response and its body in one allocation.
	rb := new(responseAndBody)
	resp := &rb.resp
	*resp = http.Response{
		Status:        statusLine(h.status),
		StatusCode:    h.status,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        h.header,
		ContentLength: h.declLen,
		Request:       s.req,
		TLS:           s.c.tls,
	}
	s.declLen = h.declLen
	switch {
	case ended:
		if resp.ContentLength < 0 {
			resp.ContentLength = 0
		}
		resp.Body = http.NoBody
	case s.req.Method == http.MethodHead:
		// A HEAD response has no body whatever its content-length.
		s.declLen = -1
		rb.body.s = s
		resp.Body = &rb.body
	default:
		rb.body.s = s
		resp.Body = &rb.body
	}
	s.resp = resp
	s.wakeHeadLocked()
	if ended {
		s.endRecvLocked()
	}
}

// onTrailersLocked takes a trailer block, which ends the stream.
func (s *stream) onTrailersLocked(f *http2.MetaHeadersFrame) error {
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
		s.resetLocked(http2.ErrCodeProtocol, &StreamError{Code: uint32(http2.ErrCodeProtocol), Reason: "a second header block that is not trailers"})
		return nil
	}
	if s.declLen >= 0 && s.gotLen != s.declLen {
		s.resetLocked(http2.ErrCodeProtocol, &StreamError{Code: uint32(http2.ErrCodeProtocol), Reason: "body shorter than its content-length"})
		return nil
	}
	regular := f.RegularFields()
	if len(regular) > 0 {
		t := make(http.Header, len(regular))
		vals, n := make([]string, len(regular)), 0
		for _, hf := range regular {
			n = h2frame.AddValue(t, vals, n, h2frame.CanonicalName(hf.Name), hf.Value)
		}
		s.trailer = t
	}
	s.endRecvLocked()
	return nil
}

func statusLine(code int) string {
	if code == http.StatusOK {
		return "200 OK"
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}
