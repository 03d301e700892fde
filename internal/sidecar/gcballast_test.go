package sidecar

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// rssAnon is the process's resident anonymous memory in bytes.
func rssAnon(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("RssAnon %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no RssAnon in /proc/self/status")
	return 0
}

// TestBallastIsNotResident: the ballast raises the collector's heap
// target by its size and adds no resident memory. Not parallel: it reads
// the process's RSS.
func TestBallastIsNotResident(t *testing.T) {
	old := gcBallast
	defer func() { gcBallast = old }()
	gcBallast = nil
	runtime.GC()
	before := rssAnon(t)
	setGCBallast(func(string) string { return "" })
	if len(gcBallast) != gcBallastBytes {
		t.Fatalf("ballast of %d bytes, want %d", len(gcBallast), gcBallastBytes)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc < gcBallastBytes {
		t.Errorf("heap in use %d bytes after GC: the ballast is not counted", ms.HeapAlloc)
	}
	if grew := rssAnon(t) - before; grew > gcBallastBytes/4 {
		t.Errorf("resident anonymous memory grew by %d bytes with a %d-byte ballast", grew, gcBallastBytes)
	}
	runtime.KeepAlive(gcBallast)
}

// TestNoBallastWhenGOGCIsSet: a user who tuned the collector keeps
// their setting alone.
func TestNoBallastWhenGOGCIsSet(t *testing.T) {
	old := gcBallast
	defer func() { gcBallast = old }()
	gcBallast = nil
	setGCBallast(func(k string) string {
		if k == "GOGC" {
			return "200"
		}
		return ""
	})
	if gcBallast != nil {
		t.Fatal("ballast allocated with GOGC set")
	}
}
