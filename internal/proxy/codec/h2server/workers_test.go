package h2server

import (
	"net/http"
	"testing"
	"time"
)

// A stream's handler runs on the server's workers (package workers, whose
// tests show a waiting worker takes the next job): after each stream one
// worker waits for the next, rather than the handler's goroutine ending.
func TestStreamsReuseWorkers(t *testing.T) {
	t.Parallel()
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	c := dialRaw(t, serve(t, srv))
	for i := range 5 {
		id := uint32(2*i + 1)
		c.get(id)
		if resp := c.await(id); resp.status != 200 {
			t.Fatalf("stream %d: status %d", id, resp.status)
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
