package cluster

import (
	"testing"

	"github.com/meshlens/meshlens/internal/proxy/table"
)

// The retry limit is max_retries capped by the retry budget, or the
// budget alone when xDS sets one.
func TestRetryLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		cb     table.CircuitBreakers
		active int64
		want   int64
	}{
		{"Envoy defaults", table.CircuitBreakers{}, 1000, 3},
		{"unlimited max_retries, default budget, few active", table.CircuitBreakers{MaxRetries: 2147483647}, 5, 3},
		{"unlimited max_retries, default budget", table.CircuitBreakers{MaxRetries: 2147483647}, 100, 20},
		{"max_retries below the budget", table.CircuitBreakers{MaxRetries: 5}, 100, 5},
		{"xDS budget replaces max_retries", table.CircuitBreakers{MaxRetries: 1, RetryBudget: &table.RetryBudget{Percent: 50, MinConcurrency: 2}}, 100, 50},
		{"xDS budget minimum", table.CircuitBreakers{RetryBudget: &table.RetryBudget{Percent: 50, MinConcurrency: 2}}, 1, 2},
	} {
		l := limitsOf(tc.cb)
		if got := l.retryLimit(tc.active); got != tc.want {
			t.Errorf("%s: retryLimit(%d) = %d, want %d", tc.name, tc.active, got, tc.want)
		}
	}
}
