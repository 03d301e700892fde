package hcm

import (
	"net/http"
	"sync/atomic"
	"time"
)

// HTTP/2 rapid reset (CVE-2023-44487): a client that opens streams and
// resets them at once makes the proxy start a handler per stream for no
// request at all; net/http's own bound only limits how many run at once.
// The proxy closes such a connection as Envoy does
// (ConnectionManagerImpl::maybeDrainDueToPrematureResets): a stream is
// reset prematurely when it ends with no response given and lived at most
// prematureResetMinLifetime; once prematureResetTotal streams have ended
// on the connection, it is closed when at least half of them were
// premature, and before that as soon as the premature ones alone are half
// of prematureResetTotal (the ratio can then no longer be met).

// Envoy's defaults: the runtime keys
// overload.premature_reset_total_stream_count and
// overload.premature_reset_min_stream_lifetime_seconds.
const (
	prematureResetTotal       = 500
	prematureResetMinLifetime = time.Second
)

// streamTally counts the HTTP/2 streams that ended on one connection.
type streamTally struct {
	ended, premature atomic.Int64
	tripped          atomic.Bool
}

// end counts a stream that ended, premature or not, and reports whether the
// connection must now be closed (true once per connection).
func (t *streamTally) end(premature bool) bool {
	total := t.ended.Add(1)
	var bad int64
	if premature {
		bad = t.premature.Add(1)
	} else {
		bad = t.premature.Load()
	}
	if total < prematureResetTotal {
		if bad*2 < prematureResetTotal {
			return false
		}
	} else if bad*2 < total {
		return false
	}
	return t.tripped.CompareAndSwap(false, true)
}

// isPrematureReset says whether an HTTP/2 request that lasted d ended as
// Envoy's isPrematureRstStream would count it: no response given
// (status 0) because the client went away, within the minimum lifetime
// (Envoy compares whole seconds, so anything under two).
func isPrematureReset(r *http.Request, status int, d time.Duration) bool {
	return status == 0 && r.Context().Err() != nil && d/time.Second <= prematureResetMinLifetime/time.Second
}

// noteStreamEnd counts an HTTP/2 stream that ended on its connection and
// closes the connection when too many of them were reset prematurely,
// counting http.<prefix>.downstream_rq_too_many_premature_resets.
func (h *Server) noteStreamEnd(ci *Conn, hs *Stats, r *http.Request, status int, d time.Duration) {
	if !ci.streams.end(isPrematureReset(r, status, d)) {
		return
	}
	hs.rqTooManyPrematureResets.Inc()
	if c := ci.closer; c != nil {
		h.env.Log.Debug("connection closed: too many premature stream resets", "remote", ci.Info.Remote, "streams", ci.streams.ended.Load(), "premature", ci.streams.premature.Load())
		_ = c.Close()
	}
}
