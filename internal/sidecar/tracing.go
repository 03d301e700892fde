package sidecar

import (
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/proxy"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/stats"
	"github.com/meshlens/meshlens/internal/tracing/sampling"
)

// App Mesh's Envoy image turned tracing on with environment variables.
// The proxy honours the X-Ray and Jaeger ones: the provider they name
// replaces the one xDS gives every HTTP connection manager (and gives
// one to those that have none), while xDS's custom tags and per-route
// percentages stay (proxy.Config.Tracing). Datadog's is not supported:
// it is warned about at start-up (appMeshEnvIgnored).

// Defaults of App Mesh's Envoy image.
const (
	defaultXRayDaemonPort   = 2000
	defaultXRaySamplingRate = 0.05 // X-Ray's default rule: 5 %
	defaultJaegerAddress    = "127.0.0.1"
	defaultJaegerPort       = 9411
	zipkinSpansPath         = "/api/v2/spans"
)

// tracingFromEnv reads ENABLE_ENVOY_XRAY_TRACING (with XRAY_DAEMON_PORT,
// AWS_XRAY_DAEMON_ADDRESS, XRAY_SAMPLING_RATE, XRAY_SEGMENT_NAME) and
// ENABLE_ENVOY_JAEGER_TRACING (with JAEGER_TRACER_ADDRESS,
// JAEGER_TRACER_PORT): nil when neither is on. Jaeger gets Zipkin v2 JSON
// on JAEGER_TRACER_PORT (9411), as App Mesh's Envoy sent it; Jaeger's
// Zipkin receiver takes it.
func tracingFromEnv(getenv func(string) string, id nodeid.ID) (*proxy.TracingOverride, error) {
	xray, err := envSwitch(getenv, "ENABLE_ENVOY_XRAY_TRACING")
	if err != nil {
		return nil, err
	}
	jaeger, err := envSwitch(getenv, "ENABLE_ENVOY_JAEGER_TRACING")
	if err != nil {
		return nil, err
	}
	if xray && jaeger {
		return nil, configf("ENABLE_ENVOY_XRAY_TRACING and ENABLE_ENVOY_JAEGER_TRACING: only one tracer can be on")
	}
	if !xray && !jaeger {
		return nil, nil
	}
	o := &proxy.TracingOverride{ServiceName: id.Mesh + "/" + id.Name, Tags: map[string]string{"meshlens.mesh": id.Mesh}}
	if id.Kind == nodeid.VirtualGateway {
		o.Tags["meshlens.virtual_gateway"] = id.Name
	} else {
		o.Tags["meshlens.virtual_node"] = id.Name
	}
	if jaeger {
		port, err := envPort(getenv, "JAEGER_TRACER_PORT", defaultJaegerPort)
		if err != nil {
			return nil, err
		}
		host := strings.TrimSpace(getenv("JAEGER_TRACER_ADDRESS"))
		if host == "" {
			host = defaultJaegerAddress
		}
		o.Provider, o.Endpoint, o.Path, o.DefaultPercent = table.TracingZipkin, net.JoinHostPort(host, strconv.Itoa(port)), zipkinSpansPath, 100
		return o, nil
	}
	o.Provider, o.DefaultPercent = table.TracingXRay, defaultXRaySamplingRate*100
	if v := strings.TrimSpace(getenv("XRAY_SEGMENT_NAME")); v != "" {
		o.ServiceName = v
	}
	port, err := envPort(getenv, "XRAY_DAEMON_PORT", defaultXRayDaemonPort)
	if err != nil {
		return nil, err
	}
	o.Endpoint = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if v := strings.TrimSpace(getenv("AWS_XRAY_DAEMON_ADDRESS")); v != "" {
		addr, err := xrayDaemonAddress(v)
		if err != nil {
			return nil, err
		}
		o.Endpoint = addr
	}
	if v := strings.TrimSpace(getenv("XRAY_SAMPLING_RATE")); v != "" {
		rate, err := strconv.ParseFloat(v, 64)
		if err != nil || rate < 0 || rate > 1 || rate != rate {
			return nil, configf("XRAY_SAMPLING_RATE %q: want a rate between 0.00 and 1.00", v)
		}
		pct := rate * 100
		o.Percent = &pct
	}
	if v := strings.TrimSpace(getenv("XRAY_SAMPLING_RULE_MANIFEST")); v != "" {
		rules, err := readSamplingRules(v)
		if err != nil {
			return nil, err
		}
		o.Rules = rules
	}
	return o, nil
}

// maxSamplingRulesSize bounds the X-Ray sampling rules file.
const maxSamplingRulesSize = 1 << 20

// readSamplingRules reads XRAY_SAMPLING_RULE_MANIFEST's file: errors name
// the variable, the file and the field.
func readSamplingRules(path string) (*sampling.Rules, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, configf("XRAY_SAMPLING_RULE_MANIFEST: %v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSamplingRulesSize+1))
	if err != nil {
		return nil, configf("XRAY_SAMPLING_RULE_MANIFEST %s: %v", path, err)
	}
	if len(data) > maxSamplingRulesSize {
		return nil, configf("XRAY_SAMPLING_RULE_MANIFEST %s: larger than %d bytes", path, maxSamplingRulesSize)
	}
	m, err := sampling.ParseManifest(data)
	if err != nil {
		return nil, configf("XRAY_SAMPLING_RULE_MANIFEST %s: %v", path, err)
	}
	rules, err := sampling.NewRules(m)
	if err != nil {
		return nil, configf("XRAY_SAMPLING_RULE_MANIFEST %s: %v", path, err)
	}
	return rules, nil
}

// envSwitch reads an ENABLE_* variable.
func envSwitch(getenv func(string) string, name string) (bool, error) {
	on, err := stats.ParseTruthy(getenv(name))
	if err != nil {
		return false, configf("%s: %v", name, err)
	}
	return on, nil
}

// envPort reads a port variable, def when unset.
func envPort(getenv func(string) string, name string, def int) (int, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		return 0, configf("%s %q: want a port between 1 and 65535", name, v)
	}
	return n, nil
}

// xrayDaemonAddress reads AWS_XRAY_DAEMON_ADDRESS: host:port, or the
// SDKs' "tcp:host:port udp:host:port" pair, of which the UDP address is
// the one segments go to.
func xrayDaemonAddress(v string) (string, error) {
	addr := v
	for _, f := range strings.Fields(v) {
		if a, ok := strings.CutPrefix(f, "udp:"); ok {
			addr = a
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return "", configf("AWS_XRAY_DAEMON_ADDRESS %q: want host:port or \"tcp:host:port udp:host:port\"", v)
	}
	return addr, nil
}
