package proxy

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/tap"
)

// GET /tap checks its parameters, ends at its duration, and refuses a
// tap beyond tap.MaxTaps with 429 until one closes.
func TestAdminTapBounds(t *testing.T) {
	p := startProxy(t, Config{NodeID: "mesh/demo/virtualNode/greeter"})
	for _, tc := range []struct {
		method, path string
		code         int
		want         string
	}{
		{http.MethodGet, "/tap?max=x", 400, "max"},
		{http.MethodGet, "/tap?duration=1h", 400, "duration"},
		{http.MethodPost, "/tap", 405, "GET required"},
	} {
		if code, body := adminDo(t, p, tc.method, tc.path); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %q, want %d naming %q", tc.method, tc.path, code, body, tc.code, tc.want)
		}
	}

	start := time.Now()
	if code, body := adminGet(t, p, "/tap?duration=300ms&path_prefix=/none"); code != 200 || body != "" {
		t.Errorf("a tap that sees nothing: %d %q", code, body)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("a 300ms tap ended after %s", el)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var open []*http.Response
	for range tap.MaxTaps {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.AdminAddr().String()+"/tap?duration=30s", nil)
		resp, err := testClient().Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("tap: %v %v", resp, err)
		}
		open = append(open, resp)
	}
	if code, body := adminGet(t, p, "/tap"); code != http.StatusTooManyRequests || !strings.Contains(body, "too many taps") {
		t.Errorf("tap %d: %d %q, want 429", tap.MaxTaps+1, code, body)
	}
	cancel()
	for _, r := range open {
		r.Body.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := adminGet(t, p, "/tap?duration=10ms")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the taps closed: %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tap.Load() != nil {
		t.Error("a tap is still open after every client left")
	}
}
