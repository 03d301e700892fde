package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/hcm"
)

// callLog is a downstream stream that logs the calls writeResponse makes.
type callLog struct {
	req   *http.Request
	hdr   http.Header
	calls []string
}

func (c *callLog) Request() *http.Request          { return c.req }
func (c *callLog) Conn() net.Conn                  { return nil }
func (c *callLog) Header() http.Header             { return c.hdr }
func (c *callLog) WriteHeader(status int)          { c.calls = append(c.calls, fmt.Sprint("head ", status)) }
func (c *callLog) Flush()                          { c.calls = append(c.calls, "flush") }
func (c *callLog) WriteTrailers(http.Header)       {}
func (c *callLog) Reset(stream.ResetCode)          {}
func (c *callLog) EnableFullDuplex() error         { return nil }
func (c *callLog) SetReadDeadline(time.Time) error { return nil }
func (c *callLog) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, stream.ErrNotHijackable
}
func (c *callLog) Write(p []byte) (int, error) {
	c.calls = append(c.calls, fmt.Sprintf("write %q", p))
	return len(p), nil
}

// arrivals is an upstream response body whose ReadReady hands over the
// chunks that have arrived, one per call, then says nothing has (or EOF
// when whole); Read logs that it would wait, and serves the chunks that
// arrive later.
type arrivals struct {
	ready, later []string
	whole        bool
	log          *callLog
}

func (a *arrivals) ReadReady(p []byte) (int, error) {
	if len(a.ready) > 0 {
		n := copy(p, a.ready[0])
		a.ready = a.ready[1:]
		return n, nil
	}
	if a.whole && len(a.later) == 0 {
		return 0, io.EOF
	}
	return 0, nil
}

func (a *arrivals) Read(p []byte) (int, error) {
	if len(a.ready) > 0 {
		return 0, fmt.Errorf("Read with %d chunks ready", len(a.ready))
	}
	a.log.calls = append(a.log.calls, "wait")
	if len(a.later) == 0 {
		return 0, io.EOF
	}
	n := copy(p, a.later[0])
	a.later = a.later[1:]
	return n, nil
}

func (a *arrivals) Close() error { return nil }

// A response of unknown length (gRPC) is flushed downstream only before
// a read of the upstream body that waits: one that arrived whole is not
// flushed at all (the stream's end writes it at once), one that streams
// is flushed each time the proxy has sent all that arrived.
func TestStreamingResponseFlushedBeforeWaiting(t *testing.T) {
	for _, tc := range []struct {
		name  string
		body  arrivals
		calls []string
	}{
		{"arrived whole", arrivals{ready: []string{"a", "b"}, whole: true},
			[]string{"head 200", `write "a"`, `write "b"`}},
		{"arrives in parts", arrivals{ready: []string{"a"}, later: []string{"b", "c"}},
			[]string{"head 200", `write "a"`, "flush", "wait", `write "b"`, "flush", "wait", `write "c"`, "flush", "wait"}},
		{"nothing yet", arrivals{later: []string{"a"}},
			[]string{"head 200", "flush", "wait", `write "a"`, "flush", "wait"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := &callLog{req: httptest.NewRequest(http.MethodPost, "/", nil), hdr: http.Header{}}
			body := tc.body
			body.log = ds
			resp := &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: -1, Body: &body}
			st, _ := hcm.StartStream(context.Background(), ds, nil, 0, 0)
			defer st.Finish()
			if err := writeResponse(ds, resp, st, &hcm.Exchange{}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ds.calls, tc.calls) {
				t.Errorf("calls\n%q\nwant\n%q", ds.calls, tc.calls)
			}
		})
	}
}

// A body that cannot tell what has arrived is flushed after every read,
// and its head at once.
func TestStreamingResponseFlushedPerRead(t *testing.T) {
	ds := &callLog{req: httptest.NewRequest(http.MethodPost, "/", nil), hdr: http.Header{}}
	resp := &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: -1, Body: io.NopCloser(&chunks{parts: []string{"a", "b"}})}
	st, _ := hcm.StartStream(context.Background(), ds, nil, 0, 0)
	defer st.Finish()
	if err := writeResponse(ds, resp, st, &hcm.Exchange{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"head 200", "flush", `write "a"`, "flush", `write "b"`, "flush"}
	if !slices.Equal(ds.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", ds.calls, want)
	}
}

type chunks struct{ parts []string }

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts = c.parts[1:]
	return n, nil
}
