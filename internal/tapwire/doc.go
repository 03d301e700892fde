// Package tapwire is the wire format of live tap, shared by the proxy's
// admin endpoint (GET /tap), the control plane's API (GET /v1/tap) and
// the CLI: the event a tap streams, one JSON object per line, and the
// query parameters that open a tap.
package tapwire
