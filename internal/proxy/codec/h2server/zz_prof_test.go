package h2server

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
)

func TestZZIdleProfile(t *testing.T) {
	runtime.MemProfileRate = 1
	old := writeHeapHook
	writeHeapHook = func() {
		runtime.GC()
		f, _ := os.Create("/tmp/idleheap.pprof")
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	defer func() { writeHeapHook = old }()
	idleConnBytes(t, 300, -1)
}
