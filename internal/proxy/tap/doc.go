// Package tap streams a sample of a proxy's live requests to whoever asks
// (Linkerd's tap): the admin endpoint GET /tap opens a tap, the HTTP
// connection manager offers every finished request to the open taps.
//
// Tapping is on demand only: while no tap is open, Load returns nil after
// one atomic load, so the request path neither allocates nor locks and
// nothing is recorded. It is bounded: at most MaxTaps taps at once, at
// most RatePerSecond events per second for the whole proxy (the rest are
// not sampled), a tap lasts at most MaxDuration, and a slow reader loses
// events instead of slowing requests. Header values are redacted unless a
// tap asks for them, and headers that carry credentials (Denied) are
// always redacted.
//
// The open taps are the process's: a process runs one proxy.
package tap
