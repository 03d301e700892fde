// Package cluster is the data plane's cluster manager: what happens
// between the router choosing a cluster and a connection to one of its
// endpoints, as Envoy's source/common/upstream.
//
//   - upstream.go: a cluster's Upstream, which outlives snapshots while
//     its connection settings (Key) stay: the connection pools
//     (net/http's Transport, or package h1client for plaintext
//     HTTP/1.1), TLS origination and the per-endpoint counters.
//   - conn.go: dialing, and the counted upstream connection.
//   - view.go: a cluster as one snapshot sees it (View), and picking an
//     endpoint by the cluster's load-balancing policy.
//   - healthcheck.go: active health checks.
//   - outlier.go: outlier detection (consecutive 5xx), ejection and the
//     sweep that returns endpoints.
//   - breaker.go: circuit breakers and the retry budget.
//   - stats.go: the cluster.<name>.* stats.
//
// The request path only loads pointers and updates atomics here: a View
// is read-only once built, and counters are atomic.
package cluster
