package proxycmd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/meshlens/meshlens/internal/sidecar"
	"github.com/meshlens/meshlens/internal/sysmon"
)

// meshlens-proxy takes the flags of `meshlens proxy` with the global ones
// (--server, --log-level, --token, --ca-file) beside them, and the same
// environment.
func TestMainParsesFlagsIntoConfig(t *testing.T) {
	var got *sidecar.Config
	var stdout, stderr bytes.Buffer
	e := Env{
		Getenv: func(k string) string {
			return map[string]string{"MESHLENS_SERVER": "http://10.0.0.1:7070", "MESHLENS_CA_FILE": "/ca.pem"}[k]
		},
		Stdout:  &stdout,
		Stderr:  &stderr,
		Version: "v9",
		Run:     func(_ context.Context, cfg sidecar.Config) error { got = &cfg; return nil },
	}
	code := Main(context.Background(), []string{"--log-level", "debug", "--token", "t0k",
		"--node", "mesh/demo/virtualNode/greeter", "--xds-addr", "cp:15010", "--listen", "9080=127.0.0.1:0", "--register=false"}, e)
	if code != ExitOK || got == nil {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	cfg := *got
	if cfg.Node != "mesh/demo/virtualNode/greeter" || cfg.XDSAddr != "cp:15010" || !slices.Equal(cfg.Listen, []string{"9080=127.0.0.1:0"}) ||
		cfg.Register || !cfg.MemoryTrim || cfg.Server != "http://10.0.0.1:7070" || cfg.Token != "t0k" || cfg.CAFile != "/ca.pem" ||
		cfg.LogLevel != "debug" || !cfg.LogLevelSet || cfg.Version != "v9" || cfg.Stdout != &stdout || cfg.Stderr != &stderr {
		t.Errorf("config %+v", cfg)
	}
}

// The exit codes are those of `meshlens proxy`: 2 for bad flags and for a
// configuration the sidecar refuses, 1 for a failure while it runs.
func TestMainExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		runErr error
		want   int
		stderr string
	}{
		{"unknown flag", []string{"--nope"}, nil, ExitUsage, "unknown flag: --nope"},
		{"argument", []string{"extra"}, nil, ExitUsage, "unknown command"},
		{"config refused", []string{"--node", "nonsense"}, &sidecar.ConfigError{Err: errors.New("node identity: bad")}, ExitUsage, "node identity"},
		{"run fails", nil, errors.New("bind: address in use"), ExitError, "address in use"},
		{"ok", nil, nil, ExitOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := Env{Getenv: func(string) string { return "" }, Stdout: &stdout, Stderr: &stderr,
				Run: func(context.Context, sidecar.Config) error { return tc.runErr }}
			code := Main(context.Background(), tc.args, e)
			if code != tc.want || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.want, tc.stderr)
			}
		})
	}
}

// --version prints the version the binary was built with.
func TestMainVersion(t *testing.T) {
	var stdout bytes.Buffer
	e := Env{Getenv: func(string) string { return "" }, Stdout: &stdout, Stderr: &stdout, Version: "v1.2.3",
		Run: func(context.Context, sidecar.Config) error { t.Error("ran the sidecar"); return nil }}
	if code := Main(context.Background(), []string{"--version"}, e); code != ExitOK || !strings.Contains(stdout.String(), "v1.2.3") {
		t.Errorf("exit %d, output %q", code, stdout.String())
	}
}

// With an Exec (as the binaries give it), the command starts again in
// place with the runtime's monitor kept awake before it runs the sidecar;
// the started process does not start again and takes the setting out of
// its environment; --sysmon-awake=false and GODEBUG=schedtrace=0 keep the
// process as it is; without an Exec (tests) nothing is replaced.
func TestSysmonAwake(t *testing.T) {
	type call struct {
		path       string
		argv, envv []string
	}
	run := func(t *testing.T, args []string, exec bool) (calls []call, ran bool, stderr string) {
		t.Helper()
		var out, errb bytes.Buffer
		e := Env{Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &errb,
			Run: func(context.Context, sidecar.Config) error { ran = true; return nil }}
		if exec {
			e.Exec = func(path string, argv, envv []string) error {
				calls = append(calls, call{path, argv, envv})
				return errors.New("exec refused in this test")
			}
		}
		if code := Main(context.Background(), args, e); code != ExitOK {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		return calls, ran, errb.String()
	}
	godebug := func(envv []string) string {
		for _, kv := range envv {
			if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
				return v
			}
		}
		return ""
	}

	t.Run("first start", func(t *testing.T) {
		t.Setenv("GODEBUG", "gctrace=0")
		calls, ran, stderr := run(t, []string{"--node", "mesh/m/virtualNode/n"}, true)
		if len(calls) != 1 || calls[0].path != sysmon.Self || godebug(calls[0].envv) != "gctrace=0,"+sysmon.Setting {
			t.Fatalf("exec calls %+v", calls)
		}
		// The exec failed here, so the command carried on, and said so.
		if !ran || !strings.Contains(stderr, "exec refused") {
			t.Errorf("ran %v, stderr %q", ran, stderr)
		}
	})
	t.Run("the started process", func(t *testing.T) {
		t.Setenv("GODEBUG", "gctrace=0,"+sysmon.Setting)
		calls, ran, _ := run(t, []string{"--node", "mesh/m/virtualNode/n"}, true)
		if len(calls) != 0 || !ran {
			t.Fatalf("exec calls %+v, ran %v", calls, ran)
		}
		if got := os.Getenv("GODEBUG"); got != "gctrace=0" {
			t.Errorf("GODEBUG left as %q, want the first process's gctrace=0", got)
		}
	})
	for name, tc := range map[string]struct {
		args    []string
		godebug string
		exec    bool
	}{
		"--sysmon-awake=false": {[]string{"--sysmon-awake=false"}, "", true},
		"GODEBUG=schedtrace=0": {nil, "schedtrace=0", true},
		"no Exec":              {nil, "", false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("GODEBUG", tc.godebug)
			calls, ran, _ := run(t, append([]string{"--node", "mesh/m/virtualNode/n"}, tc.args...), tc.exec)
			if len(calls) != 0 || !ran {
				t.Errorf("exec calls %+v, ran %v", calls, ran)
			}
		})
	}
}
