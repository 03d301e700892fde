package controlplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshlens/meshlens/internal/registry"
)

// TestStateMetricsDoNotCopyInstances: a scrape counts the registered
// instances and connected streams without copying them, so what it
// allocates does not grow with the registry (a scrape with 10 000
// instances and 5000 streams allocated about 40 MB when it listed them).
func TestStateMetricsDoNotCopyInstances(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := New(ctx, Config{DataDir: t.TempDir(), APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.apiLn.Close(); s.xdsLn.Close(); s.store.Close() })
	c := newStateCollector(s)
	collect := func() (instances float64) {
		ch := make(chan prometheus.Metric, 64)
		c.Collect(ch)
		close(ch)
		for m := range ch {
			if m.Desc() == c.instns {
				var out dto.Metric
				if err := m.Write(&out); err != nil {
					t.Fatal(err)
				}
				instances = out.GetGauge().GetValue()
			}
		}
		return instances
	}
	register := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := s.registry.Register(registry.Instance{Mesh: "m", VirtualNode: "n", ID: fmt.Sprintf("i-%d", i),
				Address: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), Port: 8080, TTLSeconds: 3600}); err != nil {
				t.Fatal(err)
			}
		}
	}
	register(0, 10)
	if got := collect(); got != 10 {
		t.Fatalf("registered instances = %v, want 10", got)
	}
	few := allocatedBytes(func() { collect() })
	register(10, 2000)
	if got := collect(); got != 2000 {
		t.Fatalf("registered instances = %v, want 2000", got)
	}
	many := allocatedBytes(func() { collect() })
	if many > few+64<<10 {
		t.Errorf("a scrape allocates %d bytes with 2000 instances, %d with 10: it copies the instances", many, few)
	}
}

// allocatedBytes is what f allocates, the least of a few runs.
func allocatedBytes(f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 5 {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		f()
		runtime.ReadMemStats(&b)
		least = min(least, b.TotalAlloc-a.TotalAlloc)
	}
	return least
}
