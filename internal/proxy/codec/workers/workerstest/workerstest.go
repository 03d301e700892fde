// Package workerstest tells tests when a worker of package workers is
// ready to take a job. A worker counts itself as waiting (Pool.Waiting)
// just before it selects for the next job, and a job handed over in
// between starts another worker: harmless in a server, but a test that
// checks a job reuses the worker must hand it over once the worker
// selects.
package workerstest

import (
	"bytes"
	"runtime"
)

// Selecting reports whether a worker goroutine is blocked in its select
// for the next job.
func Selecting() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("[select")) && bytes.Contains(g, []byte("workers.(*Pool[...]).work")) {
			return true
		}
	}
	return false
}
