package controlplane

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A handler behind the API's request counting can flush a streamed
// answer part by part (server-sent events): the counting writer unwraps
// to the connection's.
func TestCountedHandlerCanFlush(t *testing.T) {
	m := newMetrics()
	release := make(chan struct{})
	srv := httptest.NewServer(m.countRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("event: one\n\n"))
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush: %v", err)
			return
		}
		<-release
	})))
	defer srv.Close()
	defer close(release)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The first event arrives while the handler still runs.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "event: one\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
}
