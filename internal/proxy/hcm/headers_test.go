package hcm

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/meshlens/meshlens/internal/allocstest"
)

// PrepareRequestHeaders adds x-forwarded-for, x-forwarded-proto and
// x-request-id as Envoy does, and the values it adds take one allocation
// between them (three before).
func TestPrepareRequestHeaders(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	tests := []struct {
		name    string
		hdr     http.Header
		wantXFF string
	}{
		{"first hop", http.Header{"Accept": {"*/*"}}, "10.0.0.7"},
		{"after a proxy", http.Header{"X-Forwarded-For": {"192.0.2.1"}}, "192.0.2.1, 10.0.0.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{Header: tt.hdr, RemoteAddr: "10.0.0.7:41000"}
			PrepareRequestHeaders(r, "http")
			if got := r.Header["X-Forwarded-For"]; len(got) != 1 || got[0] != tt.wantXFF {
				t.Errorf("x-forwarded-for %q, want %q", got, tt.wantXFF)
			}
			if got := r.Header.Get("X-Forwarded-Proto"); got != "http" {
				t.Errorf("x-forwarded-proto %q", got)
			}
			if got := r.Header.Get("X-Request-Id"); !uuid.MatchString(got) {
				t.Errorf("x-request-id %q is not a version 4 UUID", got)
			}
		})
	}
	r := &http.Request{RemoteAddr: "10.0.0.7:41000"}
	n := allocstest.Fewest(100, func() {
		r.Header = make(http.Header, 8) // room for what is added
		PrepareRequestHeaders(r, "http")
	})
	// The map made in the loop (its header and its group) and the
	// added values.
	if n > 3 {
		t.Errorf("PrepareRequestHeaders allocates %.0f times with the header map made, want at most 3", n)
	}
	ids := map[string]bool{}
	for range 100 {
		r.Header = http.Header{}
		PrepareRequestHeaders(r, "http")
		ids[r.Header.Get("X-Request-Id")] = true
	}
	if len(ids) != 100 {
		t.Errorf("%d distinct request ids in 100 requests", len(ids))
	}
}
