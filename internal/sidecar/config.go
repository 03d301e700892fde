package sidecar

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Config is what `meshlens proxy` is told on its command line. Fields
// named after a flag take that flag's value; the CLI documents them.
// Whatever is left empty is taken from the environment (Getenv) as App
// Mesh's Envoy image took it, then from a default.
type Config struct {
	// Node is the identity (--node): mesh/M/virtualNode/N,
	// mesh/M/virtualGateway/N or an App Mesh ARN; empty reads
	// APPMESH_RESOURCE_ARN and its relatives.
	Node string
	// XDSAddr is the control plane's xDS address (--xds-addr).
	XDSAddr string
	// AdminAddr is the admin endpoint (--admin-addr).
	AdminAddr string
	// IngressAddr and EgressAddr are where the sidecar's inbound and
	// outbound listeners bind (--ingress-addr, --egress-addr).
	IngressAddr, EgressAddr string
	// Listen, App and EgressPorts are PORT=HOST:PORT mappings (--listen,
	// --app, --egress-port), in the order given.
	Listen, App, EgressPorts []string
	// Server is the control plane's REST API URL, where a sidecar
	// registers its instance; several replicas' URLs may be listed,
	// comma-separated, and heartbeats move to the next when one fails.
	Server string
	// TokenFile is a file holding the bootstrap token (--token-file);
	// Token the token itself (--token). With neither, MESHLENS_TOKEN is
	// read. The token goes with every xDS stream, metrics stream and
	// registration as authorization: Bearer <token>.
	TokenFile, Token string
	// CAFile is a PEM file of the certificate authority of the control
	// plane's TLS certificate (--ca-file): with it the xDS connection
	// (and an https --server) use TLS checked against it.
	CAFile string
	// InstanceID is the id the instance registers under (--instance-id);
	// empty: hostname-pid.
	InstanceID string
	// Advertise is the address other proxies reach this instance at
	// (--advertise-addr).
	Advertise string
	// Register turns the instance registration on (--register).
	Register bool
	// MemoryTrim gives freed memory back to the system when the proxy
	// goes quiet after a busy stretch (--memory-trim; see memtrim).
	MemoryTrim bool
	// RegistrationTTL is the registration's TTL (--registration-ttl);
	// at least 3 s.
	RegistrationTTL time.Duration
	// DrainTimeout bounds how long shutdown waits for requests in flight
	// (--drain-timeout).
	DrainTimeout time.Duration
	// Stats keeps the data path's stats (--stats); Pprof serves Go's
	// profiles on the admin port (--pprof); StdlibHTTP1Client sends
	// plaintext HTTP/1.1 upstream with net/http (--stdlib-http1-client).
	Stats, Pprof, StdlibHTTP1Client bool
	// EMFPath, EMFNamespace and EMFInclude configure the CloudWatch EMF
	// sink (--emf-path, --emf-namespace, --emf-include).
	EMFPath, EMFNamespace, EMFInclude string
	// MetricsServiceAddr is where the mesh metrics are streamed over
	// Envoy's metrics service (--metrics-service-addr): "" means the xDS
	// address (the control plane), "none" turns the stream off.
	MetricsServiceAddr string
	// MetricsServiceInterval is the time between two messages (default
	// 10s); MetricsServiceAllStats sends every stat, not only the mesh
	// metrics.
	MetricsServiceInterval time.Duration
	MetricsServiceAllStats bool
	// MeshMetricsMaxRoutes and MeshMetricsIdleTimeout bound the mesh
	// metrics' series (--mesh-metrics-max-routes,
	// --mesh-metrics-idle-timeout).
	MeshMetricsMaxRoutes   int
	MeshMetricsIdleTimeout time.Duration
	// Capture (--capture) runs the proxy with transparent capture: as
	// root it installs the iptables rules from App Mesh's variables (package
	// capture), runs the proxy again as the ignored UID, and removes the
	// rules when that exits; the proxy then binds the capture's ports and
	// serves DNS for mesh names.
	Capture bool
	// DNSAddr (--dns-addr) is where the sidecar answers DNS for mesh names
	// and forwards the rest; empty: no DNS server, unless Capture.
	// DNSUpstream (--dns-upstream) replaces /etc/resolv.conf's resolvers.
	DNSAddr, DNSUpstream string
	// registerPort, when set, is the port the instance registers instead
	// of the inbound listener's (under capture: the application's).
	registerPort int
	// Concurrency is the cores the proxy runs on (--concurrency; 0:
	// every core), when ConcurrencySet says it was on the command line;
	// otherwise ENVOY_CONCURRENCY, GOMAXPROCS or the default for the
	// node's kind decide (concurrency).
	Concurrency    int
	ConcurrencySet bool
	// LogLevel is --log-level; LogLevelSet says it was on the command
	// line, where it wins over ENVOY_LOG_LEVEL.
	LogLevel    string
	LogLevelSet bool
	// Version is the meshlens version the proxy reports.
	Version string
	// Getenv reads the environment; nil is os.Getenv.
	Getenv func(string) string
	// Stdout takes EMF lines when EMFPath is "-"; Stderr takes the logs.
	// Nil is os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
}

// ConfigError is a Config or an environment variable that cannot be
// used: how the process was started, not something that went wrong
// while it ran. The CLI exits with its usage code for it.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// configf returns a ConfigError.
func configf(format string, args ...any) error {
	return &ConfigError{fmt.Errorf(format, args...)}
}

// IsConfigError reports whether err is, or wraps, a ConfigError.
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// portMap parses repeated PORT=HOST:PORT flags.
func portMap(flag string, values []string) (map[uint32]string, error) {
	out := map[uint32]string{}
	for _, v := range values {
		port, addr, ok := strings.Cut(v, "=")
		p, err := strconv.ParseUint(port, 10, 16)
		if !ok || err != nil || p == 0 {
			return nil, configf("--%s %q: want PORT=HOST:PORT", flag, v)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, configf("--%s %q: %v", flag, v, err)
		}
		out[uint32(p)] = addr
	}
	return out, nil
}

// maxSeconds bounds a timeout given in seconds (100 years).
const maxSeconds = 100 * 365 * 24 * 3600.0

// parseSecondsOrDuration reads "15s" or a plain number of seconds, as App
// Mesh's Envoy image read its timeouts.
func parseSecondsOrDuration(v string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		// Whole seconds up to a century; beyond, or negative, NaN or
		// infinite, it is not a timeout.
		if !(n >= 0 && n <= maxSeconds) {
			return 0, fmt.Errorf("%q: want seconds between 0 and %d, or a duration such as 15s", v, int(maxSeconds))
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want seconds or a duration such as 15s", v)
	}
	return d, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
