package nethttp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
)

// streamFunc is a stream.Handler made of a function.
type streamFunc func(stream.Downstream)

func (f streamFunc) ServeStream(s stream.Downstream) { f(s) }

// handle is the stream handler of the tests: it answers with the
// connection it was told, a body, and trailers, or resets after the
// first part of the body; returned says whether ServeStream returned
// normally.
func handle(returned chan<- bool) stream.Handler {
	return streamFunc(func(s stream.Downstream) {
		defer func() { returned <- recover() == nil }()
		r := s.Request()
		if c := s.Conn(); c == nil || c.RemoteAddr().String() != r.RemoteAddr {
			s.Header().Set("X-Conn", "wrong")
		}
		s.Header().Set("Trailer", "X-Status")
		s.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(s, "partial")
		s.Flush()
		if r.URL.Path == "/reset" {
			s.Reset(stream.ResetInternalError)
			if _, err := io.WriteString(s, "more"); err == nil {
				s.Header().Set("X-Write", "after reset")
			}
			return
		}
		s.WriteTrailers(http.Header{"X-Status": {"done"}})
	})
}

// Through net/http's server, HTTP/1.1 and HTTP/2 alike, a stream handler
// sees the connection, its trailers arrive, and a Reset aborts the
// stream (HTTP/2: RST_STREAM; HTTP/1.1: the connection) after the
// handler returned normally.
func TestHandler(t *testing.T) {
	t.Parallel()
	for _, h2 := range []bool{false, true} {
		returned := make(chan bool, 4)
		srv := httptest.NewUnstartedServer(Handler(handle(returned)))
		srv.Config.ConnContext = ConnContext(nil)
		srv.EnableHTTP2 = h2
		srv.StartTLS()
		t.Cleanup(srv.Close)
		c := srv.Client()
		get := func(path string) (*http.Response, string, error) {
			resp, err := c.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			return resp, string(b), err
		}
		resp, body, err := get("/a")
		if err != nil || body != "partial" || resp.Header.Get("X-Conn") != "" || resp.Trailer.Get("X-Status") != "done" || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
			t.Errorf("h2 %v: %q %v, proto %d, header %v, trailer %v", h2, body, err, resp.ProtoMajor, resp.Header, resp.Trailer)
		}
		resp, body, err = get("/reset")
		if err == nil || body != "partial" || resp.Header.Get("X-Write") != "" {
			t.Errorf("h2 %v: reset stream read %q, %v, want the partial body and an error", h2, body, err)
		}
		for range 2 {
			if !<-returned {
				t.Errorf("h2 %v: ServeStream panicked", h2)
			}
		}
	}
}

// bareWriter is the least http.ResponseWriter, allocating nothing.
type bareWriter struct{ h http.Header }

func (w *bareWriter) Header() http.Header         { return w.h }
func (w *bareWriter) WriteHeader(int)             {}
func (w *bareWriter) Write(p []byte) (int, error) { return len(p), nil }

// Serving a stream through the adapter allocates nothing: the stream is
// pooled.
func TestHandlerAllocatesNothing(t *testing.T) {
	h := Handler(streamFunc(func(s stream.Downstream) {
		s.WriteHeader(http.StatusOK)
		_, _ = s.Write(nil)
		s.Flush()
		_ = s.Request()
	}))
	w := &bareWriter{h: http.Header{}}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	h.ServeHTTP(w, r)
	if n := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, r) }); n != 0 {
		t.Errorf("%v allocations per stream, want 0", n)
	}
}
