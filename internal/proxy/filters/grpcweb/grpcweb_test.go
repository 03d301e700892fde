package grpcweb

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/meshlens/meshlens/internal/xdsproto"
	grpcwebv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/grpc_web/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	a, err := xdsproto.NewAny(&grpcwebv3.GrpcWeb{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Decode(a); err != nil {
		t.Fatal(err)
	}
	if err := Decode(&anypb.Any{TypeUrl: "type.googleapis.com/x"}); err == nil || !strings.Contains(err.Error(), TypeURL) {
		t.Fatalf("wrong type: %v", err)
	}
	if err := Decode(nil); err == nil {
		t.Fatal("nil accepted")
	}
}

func TestRequestHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ct, accept string
		web        bool
		wantCT     string
		text, tres bool
	}{
		{ContentTypeGRPCWeb, "", true, "application/grpc", false, false},
		{ContentTypeGRPCWebProto, "", true, "application/grpc+proto", false, false},
		{"application/grpc-web+json; charset=utf-8", "", true, "application/grpc+json", false, false},
		{ContentTypeGRPCWebText, ContentTypeGRPCWebText, true, "application/grpc", true, true},
		{ContentTypeGRPCWebTextProto, "", true, "application/grpc+proto", true, true},
		{ContentTypeGRPCWebText, ContentTypeGRPCWeb, true, "application/grpc", true, false},
		{ContentTypeGRPCWeb, "application/grpc-web-text", true, "application/grpc", false, true},
		{"Application/GRPC-Web", "", true, "application/grpc", false, false},
		{"application/grpc", "", false, "application/grpc", false, false},
		{"application/grpc-webx", "", false, "application/grpc-webx", false, false},
		{"application/grpc-web+", "", false, "application/grpc-web+", false, false},
		{"application/json", "", false, "application/json", false, false},
	}
	for _, tc := range tests {
		h := http.Header{"Content-Type": {tc.ct}, "Content-Length": {"10"}}
		if tc.accept != "" {
			h.Set("Accept", tc.accept)
		}
		s := RequestHeaders(h)
		if s.IsGRPCWeb() != tc.web || s.TextRequest() != tc.text || s.TextResponse() != tc.tres {
			t.Errorf("%q/%q: stream %+v", tc.ct, tc.accept, s)
		}
		if got := h.Get("Content-Type"); got != tc.wantCT {
			t.Errorf("%q: content-type %q, want %q", tc.ct, got, tc.wantCT)
		}
		if tc.web && (h.Get("Te") != "trailers" || h.Get("Content-Length") != "" || h.Get("Grpc-Accept-Encoding") != "identity") {
			t.Errorf("%q: te %q, content-length %q", tc.ct, h.Get("Te"), h.Get("Content-Length"))
		}
		if !tc.web && h.Get("Content-Length") != "10" {
			t.Errorf("%q: a non-gRPC-Web request was changed", tc.ct)
		}
	}
}

func TestResponseHeaders(t *testing.T) {
	t.Parallel()
	bin, text := Stream{web: true}, Stream{web: true, textResponse: true}
	tests := []struct {
		name       string
		s          Stream
		status     int
		in         http.Header
		translate  bool
		wantCT     string
		wantStatus string
	}{
		{"grpc", bin, 200, http.Header{"Content-Type": {"application/grpc"}, "Content-Length": {"5"}}, true, ContentTypeGRPCWebProto, ""},
		{"grpc text", text, 200, http.Header{"Content-Type": {"application/grpc+proto"}}, true, ContentTypeGRPCWebTextProto, ""},
		{"grpc json", bin, 200, http.Header{"Content-Type": {"application/grpc+json"}}, true, "application/grpc-web+json", ""},
		{"trailers-only", bin, 200, http.Header{"Content-Type": {"application/grpc"}, "Grpc-Status": {"5"}}, true, ContentTypeGRPCWebProto, "5"},
		{"not grpc 503", bin, 503, http.Header{"Content-Type": {"text/plain"}}, false, ContentTypeGRPCWebProto, "14"},
		{"not grpc 404", text, 404, http.Header{}, false, ContentTypeGRPCWebTextProto, "12"},
		{"not grpc 500", bin, 500, http.Header{}, false, ContentTypeGRPCWebProto, "2"},
		{"grpc content type but not 200", bin, 503, http.Header{"Content-Type": {"application/grpc"}}, false, ContentTypeGRPCWebProto, "14"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.s.ResponseHeaders(tc.status, tc.in)
			if got != tc.translate {
				t.Fatalf("translate = %v", got)
			}
			if ct := tc.in.Get("Content-Type"); ct != tc.wantCT {
				t.Fatalf("content-type %q, want %q", ct, tc.wantCT)
			}
			if st := tc.in.Get("Grpc-Status"); st != tc.wantStatus {
				t.Fatalf("grpc-status %q, want %q", st, tc.wantStatus)
			}
			wantCL := ""
			if !tc.translate {
				wantCL = "0"
			}
			if cl := tc.in.Get("Content-Length"); cl != wantCL {
				t.Fatalf("content-length %q, want %q", cl, wantCL)
			}
		})
	}
	h := http.Header{"Content-Type": {"text/html"}}
	if !(Stream{}).ResponseHeaders(500, h) || h.Get("Content-Type") != "text/html" || h.Get("Grpc-Status") != "" {
		t.Fatal("zero Stream changed a response")
	}
}

func TestRequestHeadersKeepsAcceptEncoding(t *testing.T) {
	t.Parallel()
	h := http.Header{"Content-Type": {ContentTypeGRPCWeb}, "Grpc-Accept-Encoding": {"gzip"}}
	RequestHeaders(h)
	if h.Get("Grpc-Accept-Encoding") != "gzip" {
		t.Fatalf("grpc-accept-encoding %q", h.Get("Grpc-Accept-Encoding"))
	}
}

func TestNonGRPCMessage(t *testing.T) {
	t.Parallel()
	h := http.Header{"Content-Type": {"text/plain"}}
	s := Stream{web: true}
	if s.ResponseHeaders(http.StatusServiceUnavailable, h) {
		t.Fatal("a 503 text/plain response was taken for gRPC")
	}
	if err := NonGRPCMessage(h, strings.NewReader("no healthy upstream\n100%")); err != nil {
		t.Fatal(err)
	}
	if got := h.Get("Grpc-Message"); got != "no healthy upstream%0A100%25" {
		t.Fatalf("grpc-message %q", got)
	}
	if h.Get("Grpc-Status") != "14" {
		t.Fatalf("grpc-status %q", h.Get("Grpc-Status"))
	}
	long := strings.Repeat("x", MaxNonGRPCMessage+100)
	if err := NonGRPCMessage(h, strings.NewReader(long)); err != nil || len(h.Get("Grpc-Message")) != MaxNonGRPCMessage {
		t.Fatalf("long body: %d bytes, %v", len(h.Get("Grpc-Message")), err)
	}
	if err := NonGRPCMessage(h, iotest.ErrReader(errors.New("reset"))); err == nil {
		t.Fatal("read error not reported")
	}
}

func TestTextDecoder(t *testing.T) {
	t.Parallel()
	enc := base64.StdEncoding.EncodeToString
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{"empty", "", "", nil},
		{"one quantum", enc([]byte("abc")), "abc", nil},
		{"padded", enc([]byte("abcd")), "abcd", nil},
		{"padded chunks concatenated", enc([]byte("a")) + enc([]byte("bc")) + enc([]byte("defg")), "abcdefg", nil},
		{"line breaks skipped", "YW\r\nJj\n", "abc", nil},
		{"truncated", "YWJ", "", io.ErrUnexpectedEOF},
		{"bad character", "YW*j", "", ErrBadText},
		{"padding in the middle of a quantum", "Y=Jj", "", ErrBadText},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, wrap := range []func(io.Reader) io.Reader{
				func(r io.Reader) io.Reader { return r },
				iotest.OneByteReader,
				iotest.DataErrReader,
			} {
				got, err := io.ReadAll(NewTextDecoder(wrap(strings.NewReader(tc.in))))
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("err = %v, want %v", err, tc.wantErr)
					}
					continue
				}
				if err != nil || string(got) != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
			}
		})
	}
}

func TestResponseBody(t *testing.T) {
	t.Parallel()
	msg := AppendFrame(nil, 0, []byte("hello"))
	trailer := http.Header{"Grpc-Status": {"0"}, "Grpc-Message": {"ok"}, "X-Custom": {"a", "b"}}
	wantFrame := AppendFrame(nil, FlagTrailer, []byte("grpc-message:ok\r\ngrpc-status:0\r\nx-custom:a\r\nx-custom:b\r\n"))
	tests := []struct {
		name    string
		s       Stream
		body    []byte
		trailer http.Header
		want    []byte
	}{
		{"binary with trailers", Stream{web: true}, msg, trailer, append(append([]byte{}, msg...), wantFrame...)},
		{"binary without trailers", Stream{web: true}, msg, nil, msg},
		{"empty body with trailers", Stream{web: true}, nil, trailer, wantFrame},
		{"not grpc-web passes through", Stream{}, msg, trailer, msg},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, one := range []bool{false, true} {
				var src io.Reader = bytes.NewReader(tc.body)
				if one {
					src = iotest.OneByteReader(src)
				}
				got, err := io.ReadAll(tc.s.ResponseBody(src, func() http.Header { return tc.trailer }))
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
			}
		})
	}
}

// A text response is base64 chunk by chunk; decoded, it is the binary one.
func TestResponseBodyText(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat(AppendFrame(nil, 0, []byte("message")), 100)
	trailer := http.Header{"Grpc-Status": {"0"}}
	for _, one := range []bool{false, true} {
		var src io.Reader = bytes.NewReader(body)
		if one {
			src = iotest.OneByteReader(src)
		}
		text, err := io.ReadAll(Stream{web: true, textResponse: true}.ResponseBody(src, func() http.Header { return trailer }))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.ContainsFunc(text, func(r rune) bool {
			return !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", r)
		}) {
			t.Fatal("text response is not base64")
		}
		got, err := io.ReadAll(NewTextDecoder(bytes.NewReader(text)))
		if err != nil {
			t.Fatal(err)
		}
		want := append(append([]byte{}, body...), AppendTrailerFrame(nil, trailer)...)
		if !bytes.Equal(got, want) {
			t.Fatalf("decoded text response differs from the binary one (one byte reads: %v)", one)
		}
	}
}

// An upstream failure is passed on, never papered over with trailers.
func TestResponseBodyError(t *testing.T) {
	t.Parallel()
	boom := errors.New("stream reset")
	src := io.MultiReader(bytes.NewReader(AppendFrame(nil, 0, []byte("x"))), iotest.ErrReader(boom))
	got, err := io.ReadAll(Stream{web: true}.ResponseBody(src, func() http.Header { return http.Header{"Grpc-Status": {"0"}} }))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if bytes.Contains(got, []byte("grpc-status")) {
		t.Fatal("trailers written after an upstream error")
	}
}

func TestReadFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    []Frame
		wantErr error
	}{
		{"two frames", append(AppendFrame(nil, 0, []byte("ab")), AppendFrame(nil, FlagTrailer, []byte("k:v\r\n"))...), 0,
			[]Frame{{0, []byte("ab")}, {FlagTrailer, []byte("k:v\r\n")}}, io.EOF},
		{"empty", nil, 0, nil, io.EOF},
		{"empty payload", AppendFrame(nil, FlagCompressed, nil), 0, []Frame{{FlagCompressed, []byte{}}}, io.EOF},
		{"short header", []byte{0, 0, 0}, 0, nil, io.ErrUnexpectedEOF},
		{"short payload", []byte{0, 0, 0, 0, 5, 'a'}, 0, nil, io.ErrUnexpectedEOF},
		{"too large", []byte{0, 0, 0, 1, 0}, 255, nil, ErrFrameTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(tc.in)
			for i, w := range tc.want {
				f, err := ReadFrame(r, tc.max)
				if err != nil || f.Flags != w.Flags || !bytes.Equal(f.Payload, w.Payload) {
					t.Fatalf("frame %d: %+v, %v; want %+v", i, f, err, w)
				}
			}
			if _, err := ReadFrame(r, tc.max); !errors.Is(err, tc.wantErr) {
				t.Fatalf("final err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	f := Frame{Flags: FlagTrailer | FlagCompressed}
	if !f.Trailer() || !f.Compressed() {
		t.Fatal("flag accessors")
	}
}

func TestParseTrailer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    http.Header
		wantErr bool
	}{
		{"grpc-status:0\r\ngrpc-message:ok\r\n", http.Header{"Grpc-Status": {"0"}, "Grpc-Message": {"ok"}}, false},
		{"Grpc-Status: 13\r\nx-a: 1\nx-a:2", http.Header{"Grpc-Status": {"13"}, "X-A": {"1", "2"}}, false},
		{"", http.Header{}, false},
		{"no colon\r\n", nil, true},
		{"bad name:1\r\n", nil, true},
		{"x:\x01\r\n", nil, true},
	}
	for _, tc := range tests {
		got, err := ParseTrailer([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Fatalf("%q: err = %v", tc.in, err)
		}
		if err == nil && !equalHeader(got, tc.want) {
			t.Fatalf("%q: got %v, want %v", tc.in, got, tc.want)
		}
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

func TestHTTPStatusToGRPC(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]int{400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14, 500: 2, 418: 2} {
		if got := HTTPStatusToGRPC(status); got != want {
			t.Errorf("HTTP %d -> %d, want %d", status, got, want)
		}
	}
}
