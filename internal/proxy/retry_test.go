package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func withRetry(r *routev3.Route, on string, n uint32, perTry time.Duration) *routev3.Route {
	rp := &routev3.RetryPolicy{RetryOn: on, NumRetries: wrapperspb.UInt32(n),
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
	if perTry > 0 {
		rp.PerTryTimeout = durationpb.New(perTry)
	}
	r.GetRoute().RetryPolicy = rp
	return r
}

func TestRetries(t *testing.T) {
	t.Parallel()
	// flaky fails the first two attempts of each request id with 503, and
	// checks that a replayed body arrives whole.
	var attempts atomic.Int64
	flaky := startUpstream(t, "flaky", func(w http.ResponseWriter, r *http.Request) {
		n := attempts.Add(1)
		b, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost && string(b) != "payload" {
			http.Error(w, "body "+string(b), 400)
			return
		}
		if n%3 != 0 {
			w.WriteHeader(503)
			return
		}
		_, _ = io.WriteString(w, "ok "+string(b))
	})
	deadAddr := closedAddr(t)
	good := startUpstream(t, "good", nil)
	slowOnce := atomic.Bool{}
	slow := startUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		if slowOnce.CompareAndSwap(false, true) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		_, _ = io.WriteString(w, "second try")
	})

	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"},
		withRetry(xRoute("/flaky2", to("cds_flaky")), "5xx", 2, 0),
		withRetry(xRoute("/flaky1", to("cds_flaky")), "5xx", 1, 0),
		withRetry(xRoute("/connect", to("cds_half_dead")), "connect-failure", 1, 0),
		withRetry(xRoute("/pertry", to("cds_slow")), "gateway-error", 1, 100*time.Millisecond),
		withRetry(xRoute("/no5xx", to("cds_flaky")), "connect-failure", 3, 0),
	)}, xCluster("cds_flaky", flaky.Addr()), xCluster("cds_half_dead", deadAddr, good.Addr()), xCluster("cds_slow", slow.Addr())).snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)
	c := testClient()

	attempts.Store(0)
	if resp, body := get(t, c, base+"/flaky2", "x", nil); resp.StatusCode != 200 || body != "ok " {
		t.Errorf("5xx with 2 retries: %d %q", resp.StatusCode, body)
	}
	attempts.Store(0)
	req, _ := http.NewRequest(http.MethodPost, base+"/flaky2", strings.NewReader("payload"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok payload" {
		t.Errorf("POST retried with its body: %d %q", resp.StatusCode, b)
	}
	attempts.Store(0)
	if resp, _ := get(t, c, base+"/flaky1", "x", nil); resp.StatusCode != 503 {
		t.Errorf("5xx with 1 retry, 2 failures: %d, want the upstream's 503", resp.StatusCode)
	}
	attempts.Store(0)
	if resp, _ := get(t, c, base+"/no5xx", "x", nil); resp.StatusCode != 503 || attempts.Load() != 1 {
		t.Errorf("503 under connect-failure only: %d after %d attempts, want 503 after 1", resp.StatusCode, attempts.Load())
	}
	for range 6 {
		if resp, body := get(t, c, base+"/connect", "x", nil); resp.StatusCode != 200 || body != "good" {
			t.Errorf("connect-failure retry onto the live endpoint: %d %q", resp.StatusCode, body)
		}
	}
	if resp, body := get(t, c, base+"/pertry", "x", nil); resp.StatusCode != 200 || body != "second try" {
		t.Errorf("per-try timeout retried: %d %q", resp.StatusCode, body)
	}
	st := p.state.Load().byName
	if st["cds_flaky"].Up.Stats.RqRetry.Value() < 4 || st["cds_half_dead"].Up.Stats.RqRetry.Value() < 1 {
		t.Errorf("upstream_rq_retry not counted")
	}
}
