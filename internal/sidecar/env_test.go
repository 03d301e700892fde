package sidecar

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestProxyLogLevel(t *testing.T) {
	for _, tc := range []struct {
		env       string
		flag      string
		flagGiven bool
		want      slog.Level
		err       string
	}{
		{"", "info", false, slog.LevelInfo, ""},
		{"trace", "info", false, levelTrace, ""},
		{"debug", "info", false, slog.LevelDebug, ""},
		{"DEBUG", "info", false, slog.LevelDebug, ""},
		{"info", "info", false, slog.LevelInfo, ""},
		{"warning", "info", false, slog.LevelWarn, ""},
		{"warn", "info", false, slog.LevelWarn, ""},
		{"error", "info", false, slog.LevelError, ""},
		{"critical", "info", false, levelCritical, ""},
		{"off", "info", false, levelOff, ""},
		{"debug", "error", true, slog.LevelError, ""}, // the flag, given, wins
		{"", "warn", true, slog.LevelWarn, ""},
		{"loud", "info", false, 0, "ENVOY_LOG_LEVEL \"loud\": want trace, debug"},
		{"", "loud", true, 0, "--log-level \"loud\""},
	} {
		got, err := proxyLogLevel(tc.flag, tc.flagGiven, envOf(map[string]string{"ENVOY_LOG_LEVEL": tc.env}))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("env %q flag %q: error %v, want %q", tc.env, tc.flag, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("env %q flag %q (given %v): %v %v, want %v", tc.env, tc.flag, tc.flagGiven, got, err, tc.want)
		}
	}
}

// ENVOY_LOG_LEVEL=debug turns on the proxy's debug logs unless
// --log-level is on the command line.
func TestLoggerEnvoyLogLevel(t *testing.T) {
	for _, tc := range []struct {
		level     string
		set       bool
		wantDebug bool
	}{
		{"info", false, true},
		{"info", true, false},
		{"debug", true, true},
	} {
		var out bytes.Buffer
		log, err := Logger(Config{LogLevel: tc.level, LogLevelSet: tc.set, Stderr: &out, Getenv: envOf(map[string]string{"ENVOY_LOG_LEVEL": "debug"})})
		if err != nil {
			t.Fatal(err)
		}
		log.Debug("a debug line")
		if got := strings.Contains(out.String(), "level=DEBUG msg=\"a debug line\""); got != tc.wantDebug {
			t.Errorf("--log-level %q (given %v): debug line written %v, want %v: %q", tc.level, tc.set, got, tc.wantDebug, out.String())
		}
	}
}

func TestWarnIgnoredEnv(t *testing.T) {
	env := map[string]string{
		"XRAY_SAMPLING_RULE_MANIFEST":  "/etc/xray/rules.json", // read
		"ENVOY_ADMIN_ACCESS_LOG_FILE":  "/tmp/admin.log",
		"ENABLE_ENVOY_XRAY_TRACING":    "1", // read
		"APPMESH_SDS_SOCKET_PATH":      "/run/spire/sockets/agent.sock",
		"ENVOY_CONCURRENCY":            "2", // read
		"ENABLE_ENVOY_JAEGER_TRACING":  "0", // asks for nothing
		"ENABLE_ENVOY_DATADOG_TRACING": "maybe",
		"ENVOY_LOG_LEVEL":              "debug", // read
		"APPMESH_RESOURCE_ARN":         "mesh/m/virtualNode/n",
	}
	var out bytes.Buffer
	WarnIgnoredEnv(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})), envOf(env))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	warned := map[string]bool{}
	for _, l := range lines {
		if strings.Contains(l, "level=WARN msg=\"App Mesh environment variable ignored\"") {
			name := strings.Fields(l[strings.Index(l, "name="):])[0]
			warned[strings.TrimPrefix(name, "name=")] = true
			if !strings.Contains(l, "reason=") {
				t.Errorf("warning without a reason: %s", l)
			}
		}
	}
	for _, name := range []string{"ENVOY_ADMIN_ACCESS_LOG_FILE", "ENABLE_ENVOY_DATADOG_TRACING"} {
		if !warned[name] {
			t.Errorf("no warning for %s:\n%s", name, out.String())
		}
	}
	for _, name := range []string{"APPMESH_SDS_SOCKET_PATH", "ENVOY_CONCURRENCY", "ENABLE_ENVOY_JAEGER_TRACING", "ENVOY_LOG_LEVEL", "APPMESH_RESOURCE_ARN", "ENABLE_ENVOY_XRAY_TRACING", "XRAY_SAMPLING_RULE_MANIFEST"} {
		if warned[name] {
			t.Errorf("warning for %s, which is read or off:\n%s", name, out.String())
		}
	}
	if len(warned) != 2 {
		t.Errorf("%d warnings, want 2:\n%s", len(warned), out.String())
	}
	if !strings.Contains(out.String(), "level=DEBUG msg=\"App Mesh environment variable read\" name=ENVOY_LOG_LEVEL") {
		t.Errorf("no debug line for a variable read:\n%s", out.String())
	}
}

// The README lists every App Mesh variable the proxy reads and every one
// it ignores.
func TestReadmeListsAppMeshEnv(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	// The list of variables read comes before "These are ignored", the
	// ignored ones after it.
	const split = "These are ignored"
	i := strings.Index(readme, split)
	if i < 0 {
		t.Fatalf("README has no %q paragraph", split)
	}
	read, ignored := readme[:i], readme[i:]
	if j := strings.Index(ignored, "```"); j > 0 {
		ignored = ignored[:j]
	}
	for _, name := range appMeshEnvRead {
		if !strings.Contains(read, "`"+name+"`") || strings.Contains(ignored, "`"+name+"`") {
			t.Errorf("README does not list %s among the variables the proxy reads", name)
		}
	}
	for _, v := range appMeshEnvIgnored {
		if !strings.Contains(ignored, "`"+v.name+"`") {
			t.Errorf("README does not list %s among the variables the proxy ignores", v.name)
		}
	}
}
