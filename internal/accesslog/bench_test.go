package accesslog

import (
	"io"
	"testing"
)

// BenchmarkAppend formats the sample entry into a reused buffer; the
// request path's cost. Target: 0 allocs/op.
func BenchmarkAppend(b *testing.B) {
	jsonFormat, err := ParseJSON([]KV{
		{"start", "%START_TIME%"}, {"method", "%REQ(:METHOD)%"}, {"path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"},
		{"protocol", "%PROTOCOL%"}, {"status", "%RESPONSE_CODE%"}, {"flags", "%RESPONSE_FLAGS%"},
		{"bytes_in", "%BYTES_RECEIVED%"}, {"bytes_out", "%BYTES_SENT%"}, {"duration", "%DURATION%"},
		{"agent", "%REQ(USER-AGENT)%"}, {"request_id", "%REQ(X-REQUEST-ID)%"}, {"upstream", "%UPSTREAM_HOST%"},
		{"client", "%DOWNSTREAM_REMOTE_ADDRESS%"}, {"summary", "%RESPONSE_CODE% %REQ(:PATH)% in %DURATION%ms"},
	})
	if err != nil {
		b.Fatal(err)
	}
	custom, err := Parse("%START_TIME(%s.%3f)% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %UPSTREAM_CLUSTER% %GRPC_STATUS% %REQ(USER-AGENT):8%\n")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		f    *Format
	}{{"default", Default()}, {"json", jsonFormat}, {"custom", custom}} {
		b.Run(bc.name, func(b *testing.B) {
			e := sampleEntry()
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				buf = bc.f.Append(buf[:0], e)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// BenchmarkLogEntry is Append plus the queue hand-off to a writer that
// discards.
func BenchmarkLogEntry(b *testing.B) {
	w := NewWriter("discard", io.Discard, Options{QueueLines: 1 << 16, QueueBytes: 1 << 30})
	defer w.Close()
	e := sampleEntry()
	f := Default()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.LogEntry(f, e)
		}
	})
}

func TestAppendAllocations(t *testing.T) {
	e := sampleEntry()
	j, err := ParseJSON([]KV{{"a", "%REQ(:PATH)%"}, {"b", "%RESPONSE_CODE%"}, {"c", "<%REQ(X-QUOTE)%>"}, {"d", "%START_TIME(%F %T.%6f)%"}})
	if err != nil {
		t.Fatal(err)
	}
	e.Request.(HTTPHeader)["X-Quote"] = []string{`needs "escaping"`}
	for _, f := range []*Format{Default(), j} {
		buf := make([]byte, 0, 1024)
		if n := testing.AllocsPerRun(100, func() { buf = f.Append(buf[:0], e) }); n != 0 {
			t.Errorf("%s: %v allocs per Append", f, n)
		}
	}
}
