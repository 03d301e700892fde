package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// haTargets are where one HAProxy instance forwards each protocol: the
// application (the inner hop) or another HAProxy (the outer hop).
type haTargets struct {
	HTTP, H2C, GRPC, TCP string
}

// haFrontends are where one HAProxy instance listens.
type haFrontends = haTargets

// haproxyConfig renders an HAProxy configuration doing the sidecar's job
// for each protocol: HTTP/1.1 keep-alive in mode http, h2c and gRPC as
// HTTP/2 on both sides, TCP in mode tcp. One thread, as a sidecar gets
// about one core; upstream connections are reused across requests.
func haproxyConfig(listen haFrontends, to haTargets) string {
	var b strings.Builder
	b.WriteString(`global
  nbthread 1
  maxconn 4000
  tune.bufsize 32768

defaults
  mode http
  timeout connect 5s
  timeout client 5m
  timeout server 5m
  timeout http-keep-alive 5m
  option http-keep-alive
  option forwardfor
  http-reuse always
`)
	section := func(name, mode, bind, server, proto string) {
		fmt.Fprintf(&b, "\nfrontend fe_%s\n  mode %s\n  bind %s%s\n  default_backend be_%s\n", name, mode, bind, proto, name)
		fmt.Fprintf(&b, "\nbackend be_%s\n  mode %s\n  server s1 %s%s\n", name, mode, server, proto)
	}
	section("http", "http", listen.HTTP, to.HTTP, "")
	section("h2c", "http", listen.H2C, to.H2C, " proto h2")
	section("grpc", "http", listen.GRPC, to.GRPC, " proto h2")
	// TCP gets its own defaults: the HTTP options do not apply to it.
	b.WriteString("\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 5m\n  timeout server 5m\n")
	section("tcp", "tcp", listen.TCP, to.TCP, "")
	return b.String()
}

// startHAProxy writes the configuration and starts HAProxy in the
// foreground (no master process, so the pid is the one that works).
func startHAProxy(dir, name string, listen haFrontends, to haTargets) (*proc, error) {
	cfg := filepath.Join(dir, name+".cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(listen, to)), 0o644); err != nil {
		return nil, fmt.Errorf("write %s config: %w", name, err)
	}
	return startProc(dir, name, "haproxy", "-db", "-f", cfg)
}
