package tracestore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

func openT(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestDiskRetentionSurvivesRestart: spans kept on disk are there again
// after the store is reopened, and are not written twice.
func TestDiskRetentionSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	s.Add([]*tracepb.ResourceSpans{resource("gateway", span(1, 1, 0, "GET /", tracepb.Span_SPAN_KIND_SERVER, 0, 10))})
	s.Add([]*tracepb.ResourceSpans{resource("greeter", span(1, 2, 1, "greet", tracepb.Span_SPAN_KIND_SERVER, 1, 5))})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := s.Trace(traceID(tid(1)))

	again := openT(t, Options{Dir: dir})
	after := again.Trace(traceID(tid(1)))
	if after == nil || len(after.Spans) != 2 {
		t.Fatalf("after reopening: %+v", after)
	}
	if a, b := mustJSONBytes(t, before), mustJSONBytes(t, after); !bytes.Equal(a, b) {
		t.Fatalf("trace differs after reopening:\n%s\n%s", a, b)
	}
	if got := again.Services(); len(got) != 2 {
		t.Fatalf("services after reopening = %v", got)
	}
	// Reopening wrote nothing: the disk holds the two exports once.
	if st := again.Stats(); st.Spans != 2 || st.DiskBytes != s.Stats().DiskBytes {
		t.Fatalf("stats after reopening = %+v (before: %d bytes)", st, s.Stats().DiskBytes)
	}
}

// TestDiskRetentionBudget: the files stay within the disk budget, the
// oldest segments going first, and a reopened store has the newest.
func TestDiskRetentionBudget(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const budget = 2 * minSegment
	s := openT(t, Options{Dir: dir, MaxDiskBytes: budget})
	pad := strings.Repeat("x", 64<<10)
	const n = 100 // 100 × 64 KiB: over three times the budget
	for i := range uint64(n) {
		s.Add([]*tracepb.ResourceSpans{resource("svc", span(i+1, 1, 0, "op", tracepb.Span_SPAN_KIND_SERVER, i, 1, str("pad", pad)))})
		if used := s.Stats().DiskBytes; used > budget {
			t.Fatalf("after %d exports the segments take %d bytes, over %d", i+1, used, budget)
		}
	}
	s.Close()
	var total int64
	files, _ := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	for _, f := range files {
		fi, _ := os.Stat(f)
		total += fi.Size()
	}
	if total > budget || len(files) < 2 {
		t.Fatalf("%d segment files of %d bytes, want several within %d", len(files), total, budget)
	}
	again := openT(t, Options{Dir: dir, MaxDiskBytes: budget})
	if again.Trace(traceID(tid(n))) == nil {
		t.Fatal("the newest trace is gone after reopening")
	}
	if again.Trace(traceID(tid(1))) != nil {
		t.Fatal("the oldest trace is still there after its segment was deleted")
	}
}

// TestDiskRetentionDamagedTail: a segment whose last record was cut
// short (a crash mid-write) is read up to it.
func TestDiskRetentionDamagedTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir})
	s.Add([]*tracepb.ResourceSpans{resource("svc", span(1, 1, 0, "op", tracepb.Span_SPAN_KIND_SERVER, 0, 1))})
	s.Add([]*tracepb.ResourceSpans{resource("svc", span(2, 1, 0, "op", tracepb.Span_SPAN_KIND_SERVER, 0, 1))})
	s.Close()
	path := segmentPath(dir, 1)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data[:len(data)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	again := openT(t, Options{Dir: dir})
	if again.Trace(traceID(tid(1))) == nil || again.Trace(traceID(tid(2))) != nil {
		t.Fatalf("after a cut record: trace 1 kept %v, trace 2 dropped %v", again.Trace(traceID(tid(1))) != nil, again.Trace(traceID(tid(2))) == nil)
	}
	// New exports go to a new segment and survive the next reopening.
	again.Add([]*tracepb.ResourceSpans{resource("svc", span(3, 1, 0, "op", tracepb.Span_SPAN_KIND_SERVER, 0, 1))})
	again.Close()
	if third := openT(t, Options{Dir: dir}); third.Trace(traceID(tid(3))) == nil || third.Trace(traceID(tid(1))) == nil {
		t.Fatal("spans written after the damaged segment are lost")
	}
}

func mustJSONBytes(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzReadRecords: whatever a segment holds, reading it never panics
// and never yields more records than its bytes can hold.
func FuzzReadRecords(f *testing.F) {
	rec := func(payload []byte) []byte {
		b := make([]byte, recordHeader, recordHeader+len(payload))
		binary.BigEndian.PutUint32(b[:4], uint32(len(payload)))
		binary.BigEndian.PutUint32(b[4:], crc32.Checksum(payload, crcTable))
		return append(b, payload...)
	}
	valid, _ := proto.Marshal(&tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{resource("svc", span(1, 1, 0, "op", tracepb.Span_SPAN_KIND_SERVER, 0, 1))}})
	f.Add(rec(valid))
	f.Add(append(rec(valid), rec([]byte{0x0a, 0xff})...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		_ = readRecords(bytes.NewReader(data), func(*tracepb.TracesData) { n++ })
		if n*recordHeader > len(data) {
			t.Fatalf("%d records from %d bytes", n, len(data))
		}
	})
}
