// Package proxy is the data plane runtime of `meshlens proxy`: the sidecar
// and gateway that replace App Mesh's Envoy. It binds the listeners a
// compiled xDS snapshot (package table) describes, serves HTTP/1.1, h2c,
// HTTP/2 over TLS and raw TCP on them, forwards to upstream clusters, and
// runs an Envoy-compatible admin server (/server_info, /ready, /stats,
// /clusters, /config_dump, /healthcheck/fail, /drain_listeners, ...).
//
// The configuration lifecycle is the one used across meshlens: the xDS
// client decodes and compiles resources into an immutable *table.Snapshot;
// Apply provisions what the snapshot needs (binds new sockets, loads TLS
// material, prepares upstream pools) and only then swaps it in through
// atomic pointers, so the data path never takes a lock to read its
// configuration and a request finishes on the configuration it started
// with. A snapshot that cannot be provisioned (a port already in use, an
// unreadable certificate) is refused whole and the previous one keeps
// serving; the xDS client NACKs it.
//
// The stages of the request path are packages below this one, each named
// for its stage as in Envoy: listener (accept, inspectors, original
// destination, filter-chain match, TLS termination), hcm (the HTTP
// connection manager), filters/router (forwarding and retries), cluster
// (picking, pools, health checks, outlier detection, breakers), tunnel
// (TCP proxy, upgrades, CONNECT), codec/... (the HTTP/1 codecs),
// meshmetrics and tlsctx. This package ties them together: Apply
// (apply.go, provision.go), the admin server, and the hand-off from a
// listener to a chain's connection manager or TCP proxy. See
// docs/architecture.md for the walk of one request.
//
// Why the HTTP forwarding (hcm, filters/router) is written by hand rather
// than wrapping net/http/httputil.ReverseProxy: the sidecar's CPU per request is measured
// against HAProxy (docs/proxy.md), and ReverseProxy clones the request,
// copies every header map, allocates per-request buffers and hides the
// seams the retry and outlier policies need. The downstream side still uses
// net/http's server, which does the RFC-conformant parsing (and rejects
// malformed requests) that we would otherwise have to write and fuzz
// ourselves; the upstream side uses http.Transport for pooling, h2c and
// TLS.
//
// Matching a connection to a filter chain, a request to a route, and
// picking a weighted cluster and an endpoint are package table's job
// (MatchChain, Route, PickCluster, PickIndex, RewritePath); this package
// and its subpackages supply what they read from the wire and keep the
// per-endpoint state.
package proxy
