package cli

import (
	"context"
	"strings"
	"testing"
)

// `meshlens capture --print` shows the rules from ECS-named flags over
// App Mesh's variables, and a bad value names the flag it came from.
func TestCapturePrintFlagsOverEnv(t *testing.T) {
	vars := map[string]string{"APPMESH_APP_PORTS": "9080", "APPMESH_IGNORE_UID": "1337"}
	run := func(args ...string) (int, string, string) {
		root, stdout, stderr := testRoot(vars, args...)
		err := root.ExecuteContext(context.Background())
		return ExitCode(err), stdout.String(), stderr.String() + errString(err)
	}
	code, out, _ := run("capture", "--print", "--app-ports", "8080,8443", "--proxy-egress-port", "16001", "--dns-port", "0")
	if code != 0 ||
		!strings.Contains(out, "--dports 8080,8443 -j REDIRECT --to-ports 15000\n") ||
		!strings.Contains(out, "-p tcp -j REDIRECT --to-ports 16001\n") ||
		!strings.Contains(out, "--uid-owner 1337 -j RETURN\n") ||
		strings.Contains(out, "--dport 53") {
		t.Fatalf("exit %d, rules:\n%s", code, out)
	}
	code, out, _ = run("capture", "--print")
	if code != 0 || !strings.Contains(out, "--dports 9080 -j REDIRECT --to-ports 15000\n") {
		t.Fatalf("from APPMESH_APP_PORTS: exit %d, rules:\n%s", code, out)
	}
	code, _, msg := run("capture", "--print", "--ignored-uid", "envoy")
	if code != ExitUsage || !strings.Contains(msg, `--ignored-uid: "envoy"`) {
		t.Fatalf("exit %d, %q", code, msg)
	}
	vars["APPMESH_APP_PORTS"] = "80,http"
	code, _, msg = run("capture", "--print")
	if code != ExitUsage || !strings.Contains(msg, `APPMESH_APP_PORTS: "http"`) {
		t.Fatalf("exit %d, %q", code, msg)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
