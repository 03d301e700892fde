package accesslog

// ResponseFlags is the set of Envoy response flags of one request: why a
// response is what it is when the proxy, not the application, decided it
// (no route, no healthy upstream, a timeout, a reset). The proxy ORs flags
// in as it meets each condition; %RESPONSE_FLAGS% prints them the way
// Envoy does, so dashboards and alerts written against App Mesh's Envoy
// keep matching.
//
// The bit values follow Envoy's StreamInfo::ResponseFlag enum, and the
// printing order is bit order, which is Envoy's order.
type ResponseFlags uint32

// Envoy's response flags; the comment gives the short code %RESPONSE_FLAGS%
// prints and the reply that usually comes with it.
const (
	FailedLocalHealthCheck           ResponseFlags = 1 << iota // LH: local service failed its health check (503)
	NoHealthyUpstream                                          // UH: no healthy upstream host (503)
	UpstreamRequestTimeout                                     // UT: upstream request timeout (504)
	LocalReset                                                 // LR: connection local reset (503)
	UpstreamRemoteReset                                        // UR: upstream remote reset (503)
	UpstreamConnectionFailure                                  // UF: upstream connection failure (503)
	UpstreamConnectionTermination                              // UC: upstream connection termination (503)
	UpstreamOverflow                                           // UO: circuit breaker overflow (503)
	NoRouteFound                                               // NR: no route, or no filter chain (404)
	DelayInjected                                              // DI: delayed by fault injection
	FaultInjected                                              // FI: aborted by fault injection
	RateLimited                                                // RL: rate limited locally (429)
	UnauthorizedExternalService                                // UAEX: denied by external authorization
	RateLimitServiceError                                      // RLSE: rate limit service failed
	DownstreamConnectionTermination                            // DC: downstream connection termination
	UpstreamRetryLimitExceeded                                 // URX: retry limit or max connect attempts reached
	StreamIdleTimeout                                          // SI: stream idle timeout (408)
	InvalidEnvoyRequestHeaders                                 // IH: invalid strictly-checked x-envoy-* header (400)
	DownstreamProtocolError                                    // DPE: downstream HTTP protocol error
	UpstreamMaxStreamDurationReached                           // UMSDR: upstream max stream duration reached
	ResponseFromCacheFilter                                    // RFCF: served from the cache filter
	NoFilterConfigFound                                        // NFCF: filter config not received in time
	DurationTimeout                                            // DT: max connection duration exceeded
	UpstreamProtocolError                                      // UPE: upstream HTTP protocol error
	NoClusterFound                                             // NC: upstream cluster not found
	OverloadManager                                            // OM: overload manager terminated the request
	DNSResolutionFailed                                        // DF: DNS resolution failed
	DropOverload                                               // DO: dropped by the endpoint drop_overload policy
	DownstreamRemoteReset                                      // DR: downstream remote reset
	UnconditionalDropOverload                                  // UDO: unconditionally dropped by drop_overload

	// NoResponseWritten (NRW) is meshlens's own, past Envoy's flags: the
	// proxy's request handler returned without answering (a bug), and
	// the proxy answered 500 in its place rather than let the server
	// send an empty 200.
	NoResponseWritten
)

// flagCodes are the short codes in bit order.
var flagCodes = [...]string{
	"LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE",
	"DC", "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF",
	"DO", "DR", "UDO", "NRW",
}

// Has reports whether every flag of g is set in f.
func (f ResponseFlags) Has(g ResponseFlags) bool { return f&g == g }

// String returns the flags as %RESPONSE_FLAGS% prints them: short codes
// joined with ",", or "-" when none is set.
func (f ResponseFlags) String() string {
	if f == 0 {
		return "-"
	}
	return string(f.AppendTo(nil))
}

// AppendTo appends the comma-joined short codes of f to b, without
// allocating when b has room; it appends nothing when f is empty, so the
// caller chooses how to show "none". Bits beyond the known flags are
// ignored.
func (f ResponseFlags) AppendTo(b []byte) []byte {
	first := true
	for i, code := range flagCodes {
		if f&(1<<i) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, code...)
	}
	return b
}

// ParseResponseFlag returns the flag whose short code is code ("UH",
// "URX", ...), for configuration and tests that name flags as Envoy does.
func ParseResponseFlag(code string) (ResponseFlags, bool) {
	for i, c := range flagCodes {
		if c == code {
			return 1 << i, true
		}
	}
	return 0, false
}
