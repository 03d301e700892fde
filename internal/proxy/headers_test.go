package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// The proxy adds no header the client did not send but the ones it
// documents (x-forwarded-*, x-request-id, x-envoy-*): in particular no
// User-Agent of its HTTP clients, whatever the protocols either side.
func TestNoHeaderAddedUpstream(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "app", nil)
	for _, stdlib := range []bool{false, true} {
		p := startProxy(t, Config{StdlibHTTP1Client: stdlib})
		mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"},
			xRoute("/h1", to("cds_h1")), xRoute("/h2", to("cds_h2")))},
			xCluster("cds_h1", up.Addr()), withHTTP2(xCluster("cds_h2", up.Addr()))).snap(t))
		addr := addrOf(t, p, egressName, 0)
		for _, tc := range []struct {
			name   string
			client *http.Client
			path   string
		}{
			{"h1 to h1", testClient(), "/h1"},
			{"h1 to h2", testClient(), "/h2"},
			{"h2 to h1", h2cClient(), "/h1"},
			{"h2 to h2", h2cClient(), "/h2"},
		} {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+tc.path, nil)
			req.Host = "svc.local"
			// Present but empty: net/http's clients then send no
			// User-Agent of their own.
			req.Header["User-Agent"] = nil
			req.Header.Set("X-Client", "1")
			req.Header.Set("Accept-Encoding", "identity")
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			seen := up.Seen()
			got := seen[len(seen)-1]
			for k, v := range got.Header {
				switch {
				case k == "X-Client", k == "Accept-Encoding",
					k == "X-Forwarded-For", k == "X-Forwarded-Proto", k == "X-Request-Id",
					strings.HasPrefix(k, "X-Envoy-"),
					k == "X-Meshlens-Source": // the mesh metrics' caller (docs/stats.md)
				default:
					t.Errorf("stdlib h1 client %v, %s (%s upstream): the proxy added %s: %q", stdlib, tc.name, got.Proto, k, v)
				}
			}
		}
	}
}
