package h2server

import (
	"bytes"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// goroutineID is the running goroutine's number, from its stack header.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf = bytes.TrimPrefix(buf, []byte("goroutine "))
	id, _, _ := bytes.Cut(buf, []byte(" "))
	return string(id)
}

// A stream's handler runs on a worker that ran an earlier stream's and
// waits for the next, rather than on a goroutine of its own whose stack
// grows anew every time.
func TestStreamsReuseWorkers(t *testing.T) {
	t.Parallel()
	ids := make(chan string, 1)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids <- goroutineID()
	})}
	c := dialRaw(t, serve(t, srv))
	var first string
	for i := range 5 {
		id := uint32(2*i + 1)
		c.get(id)
		if resp := c.await(id); resp.status != 200 {
			t.Fatalf("stream %d: status %d", id, resp.status)
		}
		got := <-ids
		if i == 0 {
			first = got
		} else if got != first {
			t.Fatalf("stream %d ran on goroutine %s, the first on %s: no worker was reused", id, got, first)
		}
		deadline := time.Now().Add(10 * time.Second)
		for srv.workers.Waiting() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("after stream %d: %d idle workers, want 1", id, srv.workers.Waiting())
			}
			time.Sleep(time.Millisecond)
		}
	}
}
