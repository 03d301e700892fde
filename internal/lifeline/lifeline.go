// Package lifeline ties a child process's life to its parent's. The
// parent hands the child one end of a pipe and holds the other (Attach);
// it never writes to it. The child watches its end (Watch) and reads end
// of file when the parent has exited, however it ended: the kernel closes
// a dead process's descriptors. The kernel's parent-death signal alone
// was seen not to arrive (a `--capture` supervisor killed with SIGKILL
// left its proxy running), and a Go program cannot say which of its
// threads starts a child, which that signal depends on.
package lifeline

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// Env names the child's descriptor of the pipe.
const Env = "MESHLENS_LIFELINE_FD"

// Line is the parent's side of one child's lifeline.
type Line struct {
	keep, child *os.File
}

// Attach gives cmd, before it is started, the read end of a new pipe as
// an extra descriptor and names it in cmd's environment (cmd.Env, or the
// parent's environment when that is nil). The parent calls Started once
// cmd has started (or failed to), and holds the Line until the child
// should stop with it: Close, or the parent's exit, ends the child's
// line.
func Attach(cmd *exec.Cmd) (*Line, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("lifeline pipe: %w", err)
	}
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, Env+"="+strconv.Itoa(fd))
	return &Line{keep: w, child: r}, nil
}

// Started closes the parent's copy of the child's end, so that the
// child's end is the child's alone.
func (l *Line) Started() { l.child.Close() }

// Close ends the line: the child reads end of file.
func (l *Line) Close() error { return l.keep.Close() }

// Watch calls stop, once, when the parent that attached this process's
// lifeline has exited (the descriptor Env names reads end of file). It
// does nothing when Env is not set, and reports an error naming it when
// its value is not the number of an open pipe. Once watching, it removes
// Env from the process's environment and marks the descriptor
// close-on-exec, so that the processes this one starts do not inherit
// its line.
func Watch(getenv func(string) string, stop func()) error {
	v := getenv(Env)
	if v == "" {
		return nil
	}
	fd, err := ParseFD(v)
	if err != nil {
		return err
	}
	// A descriptor that is not a pipe (a file, a socket, one inherited
	// by mistake) would read end of file, or never, for other reasons.
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%s=%d: %w", Env, fd, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return fmt.Errorf("%s=%d: not a pipe", Env, fd)
	}
	// Non-blocking, so that the read waits in the runtime's poller, not
	// on a thread of its own.
	if err := syscall.SetNonblock(fd, true); err != nil {
		return fmt.Errorf("%s=%d: %w", Env, fd, err)
	}
	// The line is this process's: a process it starts inherits neither
	// the descriptor nor the variable, which would name a descriptor it
	// does not have (or another one), unless Attach gives it its own.
	syscall.CloseOnExec(fd)
	os.Unsetenv(Env)
	f := os.NewFile(uintptr(fd), "lifeline")
	go func() {
		defer f.Close()
		_, _ = io.Copy(io.Discard, f)
		stop()
	}()
	return nil
}

// ParseFD reads Env's value: a descriptor number of 3 or more (0 to 2
// are standard input, output and error). The error names Env.
func ParseFD(v string) (int, error) {
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return 0, fmt.Errorf("%s=%q: want a descriptor number of 3 or more", Env, v)
	}
	return fd, nil
}
