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

// A watched line is not passed on: the variable leaves the environment
// and the descriptor is closed on exec, so a process this one starts
// without Attach does not watch (or misread) it.
func TestWatchDoesNotPassTheLineOn(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fd, err := syscall.Dup(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Setenv(Env, strconv.Itoa(fd))
	if err := Watch(os.Getenv, func() {}); err != nil {
		t.Fatal(err)
	}
	if v, ok := os.LookupEnv(Env); ok {
		t.Errorf("%s=%s still in the environment", Env, v)
	}
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	if errno != 0 || flags&syscall.FD_CLOEXEC == 0 {
		t.Errorf("descriptor flags %#x (%v): not close-on-exec", flags, errno)
	}
}

// Without the variable nothing is watched; a malformed value is refused,
// naming the variable.
func TestWatchEnv(t *testing.T) {
	if err := Watch(func(string) string { return "" }, func() { t.Error("stop called") }); err != nil {
		t.Fatalf("no lifeline: %v", err)
	}
	f, err := os.CreateTemp(t.TempDir(), "not-a-pipe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	notPipe := strconv.Itoa(int(f.Fd()))
	for _, c := range []struct{ v, want string }{
		{"x", "want a descriptor number"},
		{"1", "want a descriptor number"},
		{"-3", "want a descriptor number"},
		{"99999", "bad file descriptor"},
		{notPipe, "not a pipe"},
	} {
		err := Watch(func(string) string { return c.v }, func() { t.Error("stop called") })
		if err == nil || !strings.Contains(err.Error(), Env) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%q: %v, want an error naming the variable: %s", Env, c.v, err, c.want)
		}
	}
}

// Any value of the variable parses to a descriptor of 3 or more, or to
// an error that names the variable; never a panic.
func FuzzParseFD(f *testing.F) {
	for _, v := range []string{"3", "4", "0", "-1", "x", "", "99999999999999999999", " 3"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		fd, err := ParseFD(v)
		if err != nil {
			if !strings.Contains(err.Error(), Env) {
				t.Fatalf("%q: error %v does not name %s", v, err, Env)
			}
			return
		}
		if fd < 3 {
			t.Fatalf("%q: descriptor %d accepted", v, fd)
		}
	})
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
