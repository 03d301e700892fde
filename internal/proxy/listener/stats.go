package listener

import (
	"strings"
	"sync/atomic"

	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tlsctx"
	"github.com/meshlens/meshlens/internal/stats"
)

// Stats are listener.<address>.*.
type Stats struct {
	cxTotal, cxDestroy, noChain *stats.Counter
	cxActive                    *stats.Gauge
	cxLength                    *stats.Histogram
	scope                       *stats.Scope
	ssl                         tlsctx.LazySSL // listener.<addr>.ssl.*, on the first TLS handshake
	// lastRefusalLog rate-limits the log line of a refused handshake
	// (unix nanoseconds).
	lastRefusalLog atomic.Int64
}

// StatName is Envoy's name of a listener in stats: its address
// with ':' made '_' (0.0.0.0_15001).
func StatName(l *table.Listener) string {
	if !l.Address.IsValid() {
		return l.Name
	}
	return strings.ReplaceAll(l.Address.String(), ":", "_")
}

// NewStats resolves the stats under sc; with a nil sc every handle is a
// no-op.
func NewStats(sc *stats.Scope) *Stats {
	if sc == nil {
		return &Stats{}
	}
	return &Stats{
		cxTotal:   sc.Counter("downstream_cx_total"),
		cxDestroy: sc.Counter("downstream_cx_destroy"),
		noChain:   sc.Counter("no_filter_chain_match"),
		cxActive:  sc.Gauge("downstream_cx_active"),
		cxLength:  sc.Histogram("downstream_cx_length_ms", stats.Milliseconds),
		scope:     sc,
	}
}
