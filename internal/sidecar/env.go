package sidecar

import (
	"log/slog"
	"os"
	"strings"

	"github.com/meshlens/meshlens/internal/stats"
)

// App Mesh's Envoy image was configured by environment variables; task
// definitions and Kubernetes manifests carry them over. `meshlens proxy`
// reads the ones that make sense without AWS and Envoy's bootstrap
// (appMeshEnvRead), and warns once at start-up about each of the others
// that is set (appMeshEnvIgnored), so that a migrated deployment learns
// what it does not get instead of assuming it.

// appMeshEnvRead are the variables of App Mesh's Envoy image that
// `meshlens proxy` honours.
var appMeshEnvRead = []string{
	"APPMESH_RESOURCE_ARN", "APPMESH_RESOURCE_NAME", "APPMESH_VIRTUAL_NODE_NAME",
	"APPMESH_RESOURCE_CLUSTER", "APPMESH_XDS_ENDPOINT",
	"ENVOY_LOG_LEVEL", "ENVOY_ADMIN_ACCESS_PORT", "ENVOY_INITIAL_FETCH_TIMEOUT", "ENVOY_CONCURRENCY",
	"ENABLE_ENVOY_STATS_TAGS", "APPMESH_METRIC_EXTENSION_VERSION", "ENVOY_STATS_FLUSH_INTERVAL",
	"ENABLE_ENVOY_DOG_STATSD", "STATSD_ADDRESS", "STATSD_PORT", "STATSD_SOCKET_PATH",
	"ENABLE_ENVOY_XRAY_TRACING", "XRAY_DAEMON_PORT", "XRAY_SAMPLING_RATE", "XRAY_SAMPLING_RULE_MANIFEST", "XRAY_SEGMENT_NAME", "AWS_XRAY_DAEMON_ADDRESS",
	"ENABLE_ENVOY_JAEGER_TRACING", "JAEGER_TRACER_ADDRESS", "JAEGER_TRACER_PORT",
	"APPMESH_SDS_SOCKET_PATH",
}

// appMeshEnvIgnored are the variables of App Mesh's Envoy image that
// `meshlens proxy` does not honour, with what to do instead.
var appMeshEnvIgnored = []struct{ name, reason string }{
	{"ENVOY_ADMIN_ACCESS_LOG_FILE", "the admin endpoint keeps no access log"},
	{"ENVOY_ADMIN_ACCESS_ENABLE_IPV6", "the admin endpoint binds 127.0.0.1; use --admin-addr"},
	{"ENVOY_STATS_CONFIG_FILE", "Envoy stats configuration is not read; the tags are App Mesh's, see docs/stats.md"},
	{"ENVOY_STATS_SINKS_CFG_FILE", "Envoy sink configuration is not read; use ENABLE_ENVOY_DOG_STATSD or --emf-path"},
	{"JAEGER_TRACER_VERSION", "spans go to Jaeger as Zipkin v2 JSON"},
	{"ENABLE_ENVOY_DATADOG_TRACING", "Datadog tracing is not supported: the agent's own trace API is not spoken; turn on the Datadog agent's OTLP receiver and set the mesh's tracing provider to otlp at it"},
	{"DATADOG_TRACER_ADDRESS", "Datadog tracing is not supported (see ENABLE_ENVOY_DATADOG_TRACING)"},
	{"DATADOG_TRACER_PORT", "Datadog tracing is not supported (see ENABLE_ENVOY_DATADOG_TRACING)"},
	{"APPMESH_SET_TRACING_DECISION", "the proxy always honours an incoming sampling decision"},
	{"APPMESH_PREVIEW", "there is no App Mesh preview channel"},
	{"APPMESH_DUALSTACK_ENDPOINT", "the control plane is --xds-addr, not an AWS endpoint"},
}

// WarnIgnoredEnv logs a warning for each ignored App Mesh variable that
// is set, and at debug level each one that is read. A switch (ENABLE_*) set to a false value asks for nothing and
// is not worth a warning.
func WarnIgnoredEnv(log *slog.Logger, getenv func(string) string) {
	for _, v := range appMeshEnvIgnored {
		val := strings.TrimSpace(getenv(v.name))
		if val == "" {
			continue
		}
		if strings.HasPrefix(v.name, "ENABLE_") {
			if on, err := stats.ParseTruthy(val); err == nil && !on {
				continue
			}
		}
		log.Warn("App Mesh environment variable ignored", "name", v.name, "reason", v.reason)
	}
	for _, name := range appMeshEnvRead {
		if getenv(name) != "" {
			log.Debug("App Mesh environment variable read", "name", name)
		}
	}
}

// Levels of ENVOY_LOG_LEVEL beyond slog's four.
const (
	levelTrace    = slog.LevelDebug - 4
	levelCritical = slog.LevelError + 4
	levelOff      = slog.Level(1 << 20)
)

// envoyLogLevels maps ENVOY_LOG_LEVEL's values (Envoy's --log-level) to
// slog levels.
var envoyLogLevels = map[string]slog.Level{
	"trace": levelTrace, "debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warning": slog.LevelWarn, "warn": slog.LevelWarn, "error": slog.LevelError,
	"critical": levelCritical, "off": levelOff,
}

// proxyLogLevel is the log level of the proxy: --log-level when given on
// the command line, else ENVOY_LOG_LEVEL when set, else the flag's
// default (flag).
func proxyLogLevel(flag string, flagGiven bool, getenv func(string) string) (slog.Level, error) {
	if env := strings.TrimSpace(getenv("ENVOY_LOG_LEVEL")); env != "" && !flagGiven {
		lv, ok := envoyLogLevels[strings.ToLower(env)]
		if !ok {
			return 0, configf("ENVOY_LOG_LEVEL %q: want trace, debug, info, warning, error, critical or off", env)
		}
		return lv, nil
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(flag))); err != nil {
		return 0, configf("--log-level %q: want debug, info, warn or error", flag)
	}
	return lv, nil
}

// Logger is the proxy's logger, writing to cfg.Stderr (os.Stderr when
// nil) at the level proxyLogLevel picks.
func Logger(cfg Config) (*slog.Logger, error) {
	getenv, w := cfg.Getenv, cfg.Stderr
	if getenv == nil {
		getenv = os.Getenv
	}
	if w == nil {
		w = os.Stderr
	}
	lv, err := proxyLogLevel(cfg.LogLevel, cfg.LogLevelSet, getenv)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv})), nil
}
