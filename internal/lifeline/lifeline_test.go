package lifeline

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A watched line stops the watcher when the parent's end closes, and not
// before.
func TestWatchStopsAtTheLinesEnd(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The descriptor is the watcher's from here on (it closes it).
	fd, err := syscall.Dup(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	stopped := make(chan struct{})
	getenv := func(k string) string {
		if k == Env {
			return strconv.Itoa(fd)
		}
		return ""
	}
	if err := Watch(getenv, func() { close(stopped) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
		t.Fatal("stopped while the parent's end is open")
	case <-time.After(200 * time.Millisecond):
	}
	w.Close()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("not stopped 10s after the parent's end closed")
	}
}

// Without the variable nothing is watched; a malformed value is refused,
// naming the variable.
func TestWatchEnv(t *testing.T) {
	if err := Watch(func(string) string { return "" }, func() { t.Error("stop called") }); err != nil {
		t.Fatalf("no lifeline: %v", err)
	}
	for _, v := range []string{"x", "1", "-3"} {
		err := Watch(func(string) string { return v }, func() { t.Error("stop called") })
		if err == nil || !strings.Contains(err.Error(), Env) {
			t.Errorf("%s=%q: %v, want an error naming the variable", Env, v, err)
		}
	}
}

// A real child: Attach names the descriptor after the ones cmd already
// passes, the child holds its end open, and reads end of file when the
// parent closes its line (as when the parent dies).
func TestAttachedChildSeesTheEnd(t *testing.T) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	// The child: reads its line until end of file, then exits 0.
	cmd := exec.Command("sh", "-c", `cat <&"$`+Env+`" >/dev/null; echo ended`)
	cmd.ExtraFiles = []*os.File{devnull}
	l, err := Attach(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if got := cmd.Env[len(cmd.Env)-1]; got != Env+"=4" {
		t.Fatalf("environment names %q, want %s=4 (after one extra file)", got, Env)
	}
	var out strings.Builder
	cmd.Stdout = &out
	err = cmd.Start()
	l.Started()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("child ended while its line was open: %v %q", err, out.String())
	case <-time.After(300 * time.Millisecond):
	}
	l.Close()
	select {
	case err := <-done:
		if err != nil || strings.TrimSpace(out.String()) != "ended" {
			t.Fatalf("child: %v %q, want it to read end of file and say so", err, out.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child still running 10s after its line closed")
	}
}
