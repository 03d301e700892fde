package cli

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlens/meshlens/internal/lifeline"
)

// `meshlens demo-app` and `meshlens server`, started with a lifeline (as
// `meshlens demo` starts them), stop as on SIGTERM when its other end
// closes, as when the demo is killed outright; a malformed lifeline is a
// usage error naming the variable.
func TestCommandsStopAtTheLifelinesEnd(t *testing.T) {
	for _, args := range [][]string{
		{"demo-app", "--role", "name", "--word", "Ada", "--listen", "127.0.0.1:0"},
		{"server", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0"},
	} {
		t.Run(args[0], func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			fd, err := syscall.Dup(int(r.Fd())) // the command's from here on
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			root, _, stderr := testRoot(map[string]string{lifeline.Env: strconv.Itoa(fd)}, args...)
			done := make(chan error, 1)
			go func() { done <- root.ExecuteContext(context.Background()) }()
			select {
			case err := <-done:
				t.Fatalf("%s ended with its lifeline open: %v\n%s", args[0], err, stderr.String())
			case <-time.After(time.Second):
			}
			w.Close()
			select {
			case err := <-done:
				if code := ExitCode(err); code != 0 {
					t.Fatalf("%s after its lifeline ended: exit %d, %v\n%s", args[0], code, err, stderr.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s still running 20s after its lifeline ended\n%s", args[0], stderr.String())
			}
		})
	}
	root, _, _ := testRoot(map[string]string{lifeline.Env: "stdin"}, "demo-app", "--role", "name", "--listen", "127.0.0.1:0")
	err := root.ExecuteContext(context.Background())
	if code := ExitCode(err); code != ExitUsage || !strings.Contains(errString(err), lifeline.Env) {
		t.Fatalf("a malformed lifeline: exit %d, %v; want a usage error naming %s", code, err, lifeline.Env)
	}
}

// testRoot is the command line with args, the environment vars and
// nothing on standard input, writing into the buffers returned.
func testRoot(vars map[string]string, args ...string) (root *cobra.Command, stdout, stderr *bytes.Buffer) {
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	e := &env{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr, getenv: func(k string) string { return vars[k] }}
	root = newRoot(e)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root, stdout, stderr
}
