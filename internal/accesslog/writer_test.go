package accesslog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// recorder is a slog.Handler that keeps its records.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }
func (r *recorder) all() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]slog.Record(nil), r.records...)
}

func TestWriterKeepsOrder(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	const n = 20000
	w := NewWriter("buffer", &buf, Options{QueueLines: n, QueueBytes: 1 << 30, BatchBytes: 1000})
	line := make([]byte, 0, 32)
	for i := range n {
		line = fmt.Appendf(line[:0], "line %d\n", i)
		w.Log(line) // the buffer is reused at once: Log must have copied it
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Dropped() != 0 || w.Written() != n {
		t.Fatalf("written %d, dropped %d; want %d, 0", w.Written(), w.Dropped(), n)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines in the output", len(lines))
	}
	for i, l := range lines {
		if l != fmt.Sprintf("line %d", i) {
			t.Fatalf("line %d is %q", i, l)
		}
	}
}

func TestWriterLogEntry(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := NewWriter("buffer", &buf, Options{})
	f, err := Parse("%RESPONSE_CODE% %REQ(:PATH)%\n")
	if err != nil {
		t.Fatal(err)
	}
	e := sampleEntry()
	w.LogEntry(f, e)
	e.ResponseCode = 503
	w.LogEntry(f, e)
	w.LogEntry(Default(), nil)
	empty, _ := Parse("")
	w.LogEntry(empty, e) // an empty line is not a line
	w.Log(nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := "204 /api/v1/locations?limit=10\n503 /api/v1/locations?limit=10\n" + string(Default().Append(nil, nil))
	if buf.String() != want || w.Written() != 3 || w.Dropped() != 0 {
		t.Errorf("got %q (written %d, dropped %d)", buf.String(), w.Written(), w.Dropped())
	}
}

// TestWriterFullQueueDoesNotBlock stalls the writer on a pipe nobody
// reads: Log must keep returning at once and count what it drops.
func TestWriterFullQueueDoesNotBlock(t *testing.T) {
	t.Parallel()
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	rec := &recorder{}
	w := NewWriter("pipe", pw, Options{QueueLines: 16, Logger: slog.New(rec)})

	line := []byte(strings.Repeat("x", 99) + "\n")
	const n = 5000 // 500 KB: far more than a pipe buffer
	var slowest time.Duration
	start := time.Now()
	for range n {
		t0 := time.Now()
		w.Log(line)
		slowest = max(slowest, time.Since(t0))
	}
	total := time.Since(start)
	// Generous bounds for a loaded machine under -race; a Log that waited
	// for the pipe would take forever.
	if slowest > time.Second || total > 5*time.Second {
		t.Errorf("Log blocked: slowest call %v, %d calls %v", slowest, n, total)
	}
	if w.Dropped() == 0 {
		t.Fatalf("nothing dropped: written %d", w.Written())
	}
	if w.Written() >= n-16 {
		t.Fatalf("written %d: the pipe did not stall the writer", w.Written())
	}

	// Let the writer go: with the read end closed its write fails (EPIPE)
	// and the rest is dropped.
	r.Close()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.Written() + w.Dropped(); got != n {
		t.Errorf("written %d + dropped %d = %d, want %d", w.Written(), w.Dropped(), got, n)
	}
	if len(rec.all()) == 0 {
		t.Error("drops were not logged")
	}
	w.Log(line)
	if w.Written()+w.Dropped() != n+1 {
		t.Error("a line logged after Close is not counted as dropped")
	}
}

// TestWriterFailingWrite writes to /dev/full, where every write fails
// with ENOSPC: every line is dropped and the error is logged once.
func TestWriterFailingWrite(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	rec := &recorder{}
	w, err := Open("/dev/full", Options{ErrorInterval: time.Hour, Logger: slog.New(rec), QueueLines: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range n {
		w.Log([]byte(fmt.Sprintf("line %d\n", i)))
		if i%100 == 0 {
			waitFor(t, "the queue to drain", func() bool { return w.Dropped() >= uint64(i+1) })
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != 0 || w.Dropped() != n {
		t.Errorf("written %d, dropped %d; want 0, %d", w.Written(), w.Dropped(), n)
	}
	recs := rec.all()
	if len(recs) != 1 {
		t.Fatalf("%d log records, want 1 per interval", len(recs))
	}
	var logged error
	recs[0].Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			logged, _ = a.Value.Any().(error)
		}
		return true
	})
	if recs[0].Level != slog.LevelError || !errors.Is(logged, syscall.ENOSPC) {
		t.Errorf("record %v %q, error %v; want an ENOSPC error", recs[0].Level, recs[0].Message, logged)
	}
}

func TestWriterFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Log([]byte("one\n"))
	waitFor(t, "the first line", func() bool { return w.Written() == 1 })

	// Rotation: move the file away, Reopen, and the next line starts a
	// new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	w.Reopen()
	w.Log([]byte("two\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	for p, want := range map[string]string{path + ".1": "old\none\n", path: "two\n"} {
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
	if w.Name() != path {
		t.Errorf("Name() = %q", w.Name())
	}

	if _, err := Open(filepath.Join(dir, "missing", "access.log"), Options{}); err == nil ||
		!strings.HasPrefix(err.Error(), "open access log: ") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open in a missing directory: %v", err)
	}
}

func TestWriterStdoutNotClosed(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"/dev/stdout", "/dev/stderr"} {
		w, err := Open(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		w.Reopen() // nothing to reopen
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stdout.Stat(); err != nil {
		t.Errorf("stdout was closed: %v", err)
	}
}

func TestRegistryShares(t *testing.T) {
	t.Parallel()
	var reg Registry
	path := filepath.Join(t.TempDir(), "shared.log")
	a, err := reg.Get(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(".", path)
	if err != nil {
		rel = path
	}
	b, err := reg.Get(rel, Options{QueueLines: 1})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("two Gets of one path gave two Writers")
	}
	a.Log([]byte("from a\n"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b.Log([]byte("from b\n")) // still open: one reference left
	reg.ReopenAll()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Dropped() != 0 || b.Written() != 2 {
		t.Errorf("written %d, dropped %d", b.Written(), b.Dropped())
	}
	got, _ := os.ReadFile(path)
	if string(got) != "from a\nfrom b\n" {
		t.Errorf("file: %q", got)
	}
	if err := b.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("Close past the last reference: %v", err)
	}
	c, err := reg.Get(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c == a {
		t.Error("Get after the last Close returned the closed Writer")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(filepath.Join(path, "not-a-dir", "x.log"), Options{}); err == nil {
		t.Error("Get of an unopenable path succeeded")
	}
}

func TestDefaultRegistry(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "default.log")
	w, err := Get(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ReopenAll()
	w.Log([]byte("x\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "x\n" {
		t.Errorf("file: %q", got)
	}
}

// TestWriterCloseRacesLog closes a Writer while goroutines log to it:
// every line is either written or counted as dropped, none vanishes.
func TestWriterCloseRacesLog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := NewWriter("buffer", &buf, Options{QueueLines: 64})
	const goroutines, each = 8, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line := []byte(fmt.Sprintf("g%d\n", g))
			for range each {
				w.Log(line)
			}
		}()
	}
	waitFor(t, "some lines", func() bool { return w.Written() > 0 })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := w.Written() + w.Dropped(); got != goroutines*each {
		t.Errorf("written %d + dropped %d = %d, want %d", w.Written(), w.Dropped(), got, goroutines*each)
	}
	if n := uint64(strings.Count(buf.String(), "\n")); n != w.Written() {
		t.Errorf("%d lines in the output, Written() = %d", n, w.Written())
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct{ release chan struct{} }

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return 0, errors.New("released")
}

func TestWriterFlushTimeout(t *testing.T) {
	t.Parallel()
	bw := &blockingWriter{release: make(chan struct{})}
	w := NewWriter("stuck", bw, Options{FlushTimeout: 20 * time.Millisecond, Logger: slog.New(&recorder{})})
	w.Log([]byte("a\n"))
	w.Log([]byte("b\n"))
	err := w.Close()
	if !errors.Is(err, ErrFlushTimeout) {
		t.Fatalf("Close on a stuck writer: %v", err)
	}
	close(bw.release)
	<-w.done
	if w.Written() != 0 || w.Dropped() != 2 {
		t.Errorf("written %d, dropped %d", w.Written(), w.Dropped())
	}
}

func TestWriterQueueBytes(t *testing.T) {
	t.Parallel()
	bw := &blockingWriter{release: make(chan struct{})}
	w := NewWriter("stuck", bw, Options{QueueBytes: 10, Logger: slog.New(&recorder{})})
	big := []byte(strings.Repeat("y", 11))
	w.Log(big) // larger than the whole queue
	if w.Dropped() != 1 {
		t.Errorf("a line over QueueBytes was not dropped: %d", w.Dropped())
	}
	close(bw.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLogAllocations checks the steady state of a Writer that keeps up:
// line buffers come back to the pool, so logging allocates nothing. (A
// Writer that falls behind holds one buffer per queued line; a GC empties
// the pool. Both cost allocations, which is why this paces the calls and
// allows a few.)
func TestLogAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	w := NewWriter("discard", io.Discard, Options{})
	defer w.Close()
	e := sampleEntry()
	f := Default()
	line := f.Append(nil, e)
	for _, tc := range []struct {
		name string
		log  func()
	}{
		{"LogEntry", func() { w.LogEntry(f, e) }},
		{"Log", func() { w.Log(line) }},
	} {
		const n = 500
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			want := w.Written() + 1
			tc.log()
			for w.Written() < want {
				runtime.Gosched()
			}
		}
		runtime.ReadMemStats(&after)
		if per := float64(after.Mallocs-before.Mallocs) / n; per > 0.1 {
			t.Errorf("%s: %.2f allocations per line", tc.name, per)
		}
	}
}
