package h1server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
)

// streamFunc is a stream.Handler made of a function.
type streamFunc func(stream.Downstream)

func (f streamFunc) ServeStream(s stream.Downstream) { f(s) }

// Through the stream interface a handler sees the request and the
// connection ServeConn was given, writes a chunked body with trailers,
// and the connection goes on to the next request; a Reset ends the
// connection after what was written, so the client reads a truncated
// body, without the handler panicking.
func TestStreams(t *testing.T) {
	t.Parallel()
	returned := make(chan bool, 4)
	addr := serve(t, &Server{Streams: streamFunc(func(s stream.Downstream) {
		defer func() { returned <- recover() == nil }()
		r := s.Request()
		if s.Conn() == nil || s.Conn().RemoteAddr().String() != r.RemoteAddr {
			s.Header().Set("X-Conn", "wrong")
		}
		s.Header().Set("X-Path", r.URL.Path)
		s.Header().Set("Trailer", "X-Status")
		s.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(s, "partial")
		s.Flush()
		if r.URL.Path == "/reset" {
			s.Reset(stream.ResetInternalError)
			if _, err := io.WriteString(s, "more"); err == nil {
				t.Error("a write after Reset succeeded")
			}
			return
		}
		s.WriteTrailers(http.Header{"X-Status": {"done"}})
	})})

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /reset HTTP/1.1\r\nHost: x\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "partial" || resp.Header.Get("X-Path") != "/a" || resp.Header.Get("X-Conn") != "" || resp.Trailer.Get("X-Status") != "done" {
		t.Errorf("first response: %q %v, header %v, trailer %v", b, err, resp.Header, resp.Trailer)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	if string(b) != "partial" || err != io.ErrUnexpectedEOF {
		t.Errorf("reset response: %q %v, want the partial body, truncated", b, err)
	}
	if rest, _ := io.ReadAll(br); len(strings.TrimSpace(string(rest))) != 0 {
		t.Errorf("after the reset the connection carried %q, want it closed", rest)
	}
	for range 2 {
		if !<-returned {
			t.Error("the handler panicked")
		}
	}
}
