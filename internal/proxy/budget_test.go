package proxy

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/internal/proxy/table"
)

// With every endpoint failing, retries do not multiply the load: the
// retry budget lets at most its share of the attempts in progress be
// retries (but always its minimum), even with max_retries unlimited as
// the control plane sends it. The upstream counts every attempt of a
// burst of concurrent requests, each of which would be tried four times
// without a budget.
func TestRetryBudgetBoundsLoad(t *testing.T) {
	t.Parallel()
	const (
		requests   = 40
		numRetries = 3
		attemptFor = 250 * time.Millisecond
	)
	for _, tc := range []struct {
		name    string
		budget  *clusterv3.CircuitBreakers_Thresholds_RetryBudget
		percent float64
		minConc int
	}{
		{"default budget", nil, table.DefaultRetryBudgetPercent, table.DefaultRetryBudgetMinConcurrency},
		{"xDS retry_budget", &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent: &typev3.Percent{Value: 10}, MinRetryConcurrency: wrapperspb.UInt32(2),
		}, 10, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Every attempt fails with 503 after attemptFor; the first
			// attempts of the burst wait until all of them arrived, so
			// that they are in progress together.
			var attempts atomic.Int64
			arrived := make(chan struct{})
			var once sync.Once
			up := startUpstream(t, "down", func(w http.ResponseWriter, r *http.Request) {
				if attempts.Add(1) == requests {
					once.Do(func() { close(arrived) })
				}
				select {
				case <-arrived:
				case <-time.After(10 * time.Second):
				}
				time.Sleep(attemptFor)
				w.WriteHeader(http.StatusServiceUnavailable)
			})
			cl := withBreakers(xCluster("cds_down", up.Addr()), 0, 0, 0, 2147483647)
			cl.CircuitBreakers.Thresholds[0].RetryBudget = tc.budget
			p := startProxy(t, Config{})
			mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"},
				withRetry(xRoute("/", to("cds_down")), "5xx", numRetries, 0))}, cl).snap(t))
			base := "http://" + addrOf(t, p, egressName, 0)

			c := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: requests}, Timeout: 20 * time.Second}
			var wg sync.WaitGroup
			codes := make([]int, requests)
			for i := range requests {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := c.Get(fmt.Sprintf("%s/r%d", base, i))
					if err != nil {
						t.Errorf("request %d: %v", i, err)
						return
					}
					resp.Body.Close()
					codes[i] = resp.StatusCode
				}()
			}
			wg.Wait()
			for i, code := range codes {
				if code != http.StatusServiceUnavailable {
					t.Errorf("request %d: %d, want the upstream's 503", i, code)
				}
			}
			// Without a budget: requests * (1 + numRetries) attempts.
			bound := int64(float64(requests)*(1+tc.percent/100)) + int64(tc.minConc*numRetries)
			got := attempts.Load()
			if got > bound {
				t.Errorf("%d upstream attempts for %d requests, want at most %d", got, requests, bound)
			}
			retries := statValue(t, p, "cluster.cds_down.upstream_rq_retry")
			if retries != got-requests {
				t.Errorf("upstream_rq_retry = %d, want %d", retries, got-requests)
			}
			if o := statValue(t, p, "cluster.cds_down.upstream_rq_retry_overflow"); o <= 0 {
				t.Errorf("upstream_rq_retry_overflow = %d, want retries refused", o)
			}
			t.Logf("%d attempts for %d requests (bound %d)", got, requests, bound)
		})
	}
}
