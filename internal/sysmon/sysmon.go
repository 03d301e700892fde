// Package sysmon starts the proxy with the Go runtime's system monitor
// kept awake between requests.
//
// The runtime's monitor thread (sysmon) sleeps deeply whenever every
// processor is idle, and the first system call after that wakes it with a
// futex and puts it back on 20 µs naps for the next millisecond. A proxy
// at a moderate rate goes idle between almost every two requests, so it
// paid that wake-up, and the naps, on nearly every request: at 1000 gRPC
// requests per second they were a fifth of the sidecar's CPU
// (BENCHMARKS.md finding 32). With schedtrace set the monitor never sleeps
// deeply: it backs off to one wake-up every 10 ms, as it does in a process
// that is always busy.
//
// schedtrace can only be set before the runtime starts, through GODEBUG,
// so Reexec replaces the process with itself (same PID, arguments and
// environment) with Setting added to GODEBUG, and Restore takes it out of
// the environment again in the new process so that nothing it starts
// inherits it.
package sysmon

import (
	"fmt"
	"strings"
)

// Setting is what Reexec adds to GODEBUG: schedtrace at the longest
// period the runtime accepts, 2^31-1 ms (24.8 days). Its one other effect
// is a line of scheduler state ("SCHED ...") on standard error once per
// period, and at start on a machine that has been up for longer than one
// period; and the same state after a fatal runtime error's trace.
const Setting = "schedtrace=2147483647"

// Self is the executable Reexec starts: the running one, whatever its
// name or whether it was found through PATH.
const Self = "/proc/self/exe"

// Process is what Reexec reads of the process and how it replaces it.
type Process struct {
	GOOS    string
	Args    []string
	Environ []string
	// Exec replaces the process (syscall.Exec); it returns only on
	// failure.
	Exec func(path string, argv, envv []string) error
}

// Wanted reports whether the process should be replaced: on Linux, when
// GODEBUG does not already set schedtrace. A GODEBUG that does is the
// user's choice (schedtrace=0 turns this off) or this package's, in the
// process it started.
func Wanted(goos, godebug string) bool {
	if goos != "linux" {
		return false
	}
	for _, kv := range strings.Split(godebug, ",") {
		if k, _, _ := strings.Cut(strings.TrimSpace(kv), "="); k == "schedtrace" {
			return false
		}
	}
	return true
}

// Reexec replaces the process with itself started with Setting added to
// GODEBUG, when Wanted says so. It returns nil without doing anything
// when it is not wanted, and the error when the exec fails (the caller
// carries on as it is).
func Reexec(p Process) error {
	godebug, found := lookup(p.Environ, "GODEBUG")
	if !Wanted(p.GOOS, godebug) {
		return nil
	}
	value := Setting
	if found && godebug != "" {
		value = godebug + "," + Setting
	}
	env := make([]string, 0, len(p.Environ)+1)
	for _, kv := range p.Environ {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GODEBUG="+value)
	if err := p.Exec(Self, p.Args, env); err != nil {
		return fmt.Errorf("re-execute %s with GODEBUG=%s: %w", Self, value, err)
	}
	return nil
}

// Restore removes what Reexec added to GODEBUG from the environment, in
// the process Reexec started, and reports whether it was there: whether
// the runtime runs with Setting. The runtime read GODEBUG when it started;
// changing the variable now leaves schedtrace as it is.
func Restore(getenv func(string) string, setenv func(string, string) error, unsetenv func(string) error) (bool, error) {
	v := getenv("GODEBUG")
	switch {
	case v == Setting:
		if err := unsetenv("GODEBUG"); err != nil {
			return true, fmt.Errorf("unset GODEBUG: %w", err)
		}
		return true, nil
	case strings.HasSuffix(v, ","+Setting):
		if err := setenv("GODEBUG", strings.TrimSuffix(v, ","+Setting)); err != nil {
			return true, fmt.Errorf("restore GODEBUG: %w", err)
		}
		return true, nil
	}
	return false, nil
}

// lookup is the value of key in environ, the first one if repeated (as
// os.Getenv reads it).
func lookup(environ []string, key string) (string, bool) {
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			return val, true
		}
	}
	return "", false
}
