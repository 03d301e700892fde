// Package stats is the meshlens proxy's (and control plane's) counters,
// gauges and histograms, named, tagged and printed as Envoy does, so that
// the dashboards, alarms and scrapers App Mesh users built against Envoy's
// /stats, /stats/prometheus and DogStatsD sink keep working.
//
// # Using it from the data path
//
// Everything that costs something is done when configuration is applied;
// the request path only touches handles:
//
//	// Provision (config time): acquire scopes, resolve handles.
//	sc := store.Scope("cluster.cds_egress_demo_greeting-v1_http_9080.")
//	rqTotal := sc.Counter("upstream_rq_total")
//	rqActive := sc.Gauge("upstream_rq_active")
//	rqTime := sc.Histogram("upstream_rq_time", stats.Milliseconds)
//	codes := sc.CodeCounters("upstream_rq") // upstream_rq_200, upstream_rq_2xx, ...
//
//	// Request path: atomics only, no locks, no allocation.
//	rqTotal.Inc()
//	rqActive.Inc(); defer rqActive.Dec()
//	codes.Inc(resp.StatusCode) // upstream_rq_<code> and upstream_rq_<N>xx
//	rqTime.RecordDuration(time.Since(start))
//
//	// Cleanup (old config): release what the old config acquired.
//	oldScope.Release()
//
// Asking a scope twice for the same name returns the same handle, and
// acquiring a prefix that is live shares its stats, so the usual
// lifecycle (provision the new snapshot, swap, clean up the old one)
// keeps the stats of clusters and listeners that stay, while those of a
// removed cluster disappear from every output once its last scope is
// released; a cluster added back later starts from zero, as in Envoy.
// Handles of a released scope stay safe to use (updates go nowhere), so
// requests in flight on the old configuration need no care. A nil handle
// is a no-op, so the data path can run without a store in tests.
// Scope.CounterByCode(prefix, code) is a lock-free, allocation-free
// lookup for code paths that cannot hold a CodeCounters.
//
// Run exactly one Flusher per Store (NewFlusher(...).Run(ctx)), with or
// without sinks: besides pushing to sinks it merges histograms every
// flush interval (Envoy's stats_flush_interval, 5s by default;
// ENVOY_STATS_FLUSH_INTERVAL is the caller's to parse), and the admin
// outputs print histograms as of that merge, with interval quantiles
// covering the last flush interval, as Envoy's do.
//
// # Names and tags
//
// Stats are named as Envoy names them (cluster.<name>.upstream_rq_200,
// http.<stat_prefix>.downstream_rq_2xx, listener.<address>.downstream_cx_total,
// server.live); choosing the names is the caller's part. When a stat is
// created, and never again, its name goes through Envoy's default tag
// extractors (EnvoyTagRules, re-expressed from Envoy's well_known_names.cc)
// and App Mesh's (AppMeshTagRules: appmesh.listener_protocol and
// appmesh.listener_port from ingress.<protocol>.<port> stat prefixes), which
// yields its tag-extracted name (cluster.upstream_rq) and tags
// (envoy.response_code=200, envoy.cluster_name=...). Options.FixedTags
// (FixedTagsFromEnv: ENABLE_ENVOY_STATS_TAGS, APPMESH_METRIC_EXTENSION_VERSION)
// are added to every stat, and ScopeWithTags adds a scope's own tags (the
// metrics extension's TargetVirtualNode and TargetVirtualService).
//
// # Outputs
//
// WriteText, WriteJSON and WritePrometheus render /stats,
// /stats?format=json and /stats/prometheus byte for byte as Envoy does
// (sorting, number formatting, `{}` on label-less samples, counters
// without a _total suffix). They are written by hand rather than with
// prometheus/common/expfmt because that encoder sorts and elides labels
// differently from Envoy, and the point is Envoy's exact bytes; the
// Prometheus output is checked with promtool in the tests. ResetCounters
// is POST /reset_counters.
//
// WriteOpenMetrics writes the same series in the OpenMetrics 1.0 text
// format, for a scraper whose Accept header asks for it
// (AcceptsOpenMetrics), with exemplars: Histogram.ObserveWithExemplar
// records a sample and keeps it, with the trace id of its request, as its
// bucket's exemplar (lock-free, allocation-free: a seqlock of atomics per
// bucket). Prometheus's own OpenMetrics parser (promtool) checks the
// output in the tests.
//
// Push sinks implement Sink and receive a Snapshot per flush: package
// statsd (statsD and DogStatsD over UDP or a Unix socket) and package emf
// (CloudWatch Embedded Metric Format lines).
//
// # Histograms
//
// A histogram keeps Envoy's own log-linear bins (two significant digits,
// libcircllhist's layout) as fixed arrays of atomic counters, spread over
// a few shards to keep cores from contending on one cache line; a
// decade's bins are allocated the first time a shard sees a value of that
// magnitude. Quantiles and Prometheus bucket counts are computed from the
// bins exactly as Envoy computes them, so the same samples print the same
// P50 and the same le counts; the one deliberate difference is _sum,
// which is the exact sum of the samples where Envoy approximates it from
// bin midpoints.
package stats
