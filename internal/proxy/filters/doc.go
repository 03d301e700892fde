// Package filters is the home of the proxy's HTTP (and connection-level)
// filters, one sub-package per filter, named after the Envoy filter whose
// xDS configuration it reads: fault (envoy.filters.http.fault), ratelimit
// (envoy.filters.http.local_ratelimit and envoy.filters.network.local_ratelimit),
// cors (envoy.filters.http.cors) and grpcweb (envoy.filters.http.grpc_web).
//
// Every filter follows the same contract, so that the connection manager
// can call any of them from any stream implementation (HTTP/1.1, HTTP/2,
// net/http or a codec of our own):
//
//  1. Decode: the filter's typed_config (an *anypb.Any or the typed proto)
//     is decoded once, when a snapshot is applied, into an immutable
//     *Config. Bad input is an error naming the field path and the reason;
//     fields the filter does not implement are refused by name rather than
//     silently ignored, so a configuration never means less than it says.
//  2. Per-route configuration (typed_per_filter_config) is decoded the same
//     way and combined with the listener's by the package's Override or
//     Merge function, as Envoy does for that filter.
//  3. On the request path, the compiled config answers with plain values
//     (a Decision, a set of headers, an io.Reader wrapper). The request
//     path takes no lock, and the decisions allocate nothing where that
//     can be avoided: state that changes per request (token buckets,
//     active-fault counts) is kept in atomics.
//  4. Stats keep Envoy's names, so dashboards written for Envoy read ours.
//     Handles are *stats.Counter and *stats.Gauge from internal/stats,
//     created from a scope the caller owns; a nil scope gives nil handles,
//     which are no-ops.
//
// Randomness (for percentages) and time (for buckets) are arguments, not
// hidden globals, so that every decision is reproducible in a test.
//
// Shared helpers live in small packages named for what they do: percent
// (Envoy's FractionalPercent) and strmatch (Envoy's StringMatcher).
package filters
