// Package tunnel relays bytes between a downstream and an upstream
// connection: the TCP proxy (Envoy's tcp_proxy network filter, TCP), the
// copy loop shared with HTTP upgrades and CONNECT tunnels (PipeBoth), and
// the set of open pairs that a listener's or server's drain closes (Set).
//
// The HTTP half of an upgrade or a CONNECT (routing the request, the
// endpoint's 101 or the proxy's 200, local replies when it fails) belongs
// to the HTTP connection manager (package hcm, upgrade.go); once the
// connections are switched it hands them to PipeBoth.
package tunnel
