// Package accesslog writes App Mesh's access logs the way App Mesh's Envoy
// writes them: a virtual node's or virtual gateway's
// logging.accessLog.file.path (a file, /dev/stdout or /dev/stderr) with
// Envoy's default line, a format.text Envoy format string, or format.json
// key/format pairs. docs/accesslog.md is the user-facing reference.
//
// It has two halves:
//
//   - Format: Parse, ParseJSON or FromConfig compile a format once per
//     configuration into an immutable *Format; Format.Append renders one
//     *Entry into a byte slice. The supported command operators, their
//     missing-value "-", JSON typing, :N truncation and X?Y alternatives
//     follow Envoy's substitution formatter; an operator Envoy would
//     reject (or that meshlens cannot fill) is a *ParseError naming the
//     operator and its byte position, so the xDS client can NACK it.
//   - Writer: a per-file goroutine fed by a bounded queue. Log never
//     blocks and never fails the request: when the queue is full or the
//     file write fails, lines are dropped and counted (Dropped).
//
// # Integration in the proxy's data path
//
// Per listener (at Provision, off the request path):
//
//	f, err := accesslog.FromConfig(al.Format, al.JSONFormat) // table.AccessLog
//	w, err := accesslog.Get(al.Path, accesslog.Options{})    // shared per path
//	// keep (f, w) in the compiled listener; Close w when it is Cleanup'ed
//
// Per request, after the response is finished (or the stream reset):
//
//	e := &ex.log                // an accesslog.Entry inside the pooled exchange
//	e.Start = start
//	e.Method, e.Path, e.Authority, e.Scheme = r.Method, ex.req.path, r.Host, scheme
//	e.Protocol = accesslog.ProtocolName(r.ProtoMajor, r.ProtoMinor)
//	e.Request = accesslog.HTTPHeader(r.Header)    // no copy, no allocation
//	e.Response = accesslog.HTTPHeader(resp.Header)
//	e.ResponseCode, e.Flags = status, flags       // e.g. accesslog.NoHealthyUpstream
//	e.BytesReceived, e.BytesSent, e.Duration = in, out, time.Since(start)
//	e.UpstreamHost, e.UpstreamCluster = ep.addr, cluster
//	e.DownstreamRemote, e.DownstreamLocal = ci.remote, ci.dst
//	w.LogEntry(f, e)            // formats into a pooled buffer and queues it
//	*e = accesslog.Entry{}      // before the exchange goes back to its pool
//
// Formatting a reused buffer with Format.Append allocates nothing (the
// benchmark checks the default format at 0 allocs/op), and so does
// Writer.LogEntry in steady state: line buffers come from a sync.Pool and
// travel through the queue by pointer. The request goroutine pays for
// formatting (about a microsecond) and one non-blocking channel send; the
// write system call happens on the Writer's goroutine, batched.
//
// Header lookups go through the Headers interface so the proxy's own
// wrappers answer them; HeaderName carries both the lower-case and the
// canonical MIME spelling, computed by Parse, so a lookup in an
// http.Header needs no canonicalisation at request time.
//
// Dropped and Written are the Writer's counters; the proxy exports their
// sums as the access_log.dropped and access_log.written gauges.
// Writer.Reopen and ReopenAll reopen files for log rotation; the proxy's
// SIGUSR1 handler calls ReopenAll, as Envoy reopens its logs on SIGUSR1
// (the package installs no signal handler itself: a library should not).
//
// A process that logs to /dev/stdout or /dev/stderr should ignore
// SIGPIPE (signal.Ignore), as Envoy does: otherwise the Go runtime kills
// it when the reader of its standard output goes away, where the Writer
// would have counted the failed writes as drops.
//
// Why written here: Envoy's formatter is C++, and the Go access-log
// libraries we know of take Apache/NCSA formats, allocate per line and
// write synchronously, none of which fits a sidecar's request path.
package accesslog
