package xds

import (
	"testing"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// An HTTP health check's path reaches the data plane with its leading
// "/", as App Mesh sent it, whether or not the resource wrote one.
func TestHealthCheckPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		protocol, path, want string
	}{
		{"http", "/health", "/health"},
		{"http", "health", "/health"},
		{"http", "", "/"},
		{"http", "ping?full=1", "/ping?full=1"},
		{"http2", "health", "/health"},
		{"http2", "/", "/"},
	} {
		hc := healthCheck(&v1alpha1.HealthCheckPolicy{
			Protocol: tc.protocol, Path: tc.path, IntervalMillis: 5000, TimeoutMillis: 2000, HealthyThreshold: 2, UnhealthyThreshold: 2,
		})
		if got := hc.GetHttpHealthCheck().GetPath(); got != tc.want {
			t.Errorf("%s path %q: checks %q, want %q", tc.protocol, tc.path, got, tc.want)
		}
	}
}
