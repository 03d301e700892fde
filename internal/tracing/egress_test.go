package tracing

import (
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/tracing/propagation"
	"github.com/meshlens/meshlens/internal/tracing/sampling"
)

// TestDecideAndClientOf: a hop that records only client spans decides
// as Begin does, and its attempts are children of the caller's span; an
// unsampled request gets no span and allocates nothing.
func TestDecideAndClientOf(t *testing.T) {
	tr, exp, _ := newTracer(t, 100, sampling.Tail{})
	parent, _ := propagation.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	r := tr.Decide(parent, "r1", t0)
	if r.Span != nil || !r.Ctx.Sampled || r.Ctx.TraceID != parent.TraceID {
		t.Fatalf("Decide: %+v", r)
	}
	c1 := tr.StartClientOf(&r, 1, t0)
	c2 := tr.StartClientOf(&r, 2, t0.Add(time.Millisecond))
	if c1.Context().SpanID == c2.Context().SpanID {
		t.Error("two attempts share a span id")
	}
	c1.End(t0.Add(time.Millisecond))
	c2.End(t0.Add(2 * time.Millisecond))
	if len(exp.spans) != 2 {
		t.Fatalf("exported %d spans", len(exp.spans))
	}
	for i, d := range exp.spans {
		if d.Kind != KindClient || d.ParentID != parent.SpanID || d.TraceID != parent.TraceID || d.Mesh.Attempt != i+1 || d.Mesh.Route != "r1" {
			t.Errorf("span %d: %+v", i, d)
		}
	}

	if raceEnabled {
		return
	}
	off, _, _ := newTracer(t, 0, sampling.Tail{})
	if n := testing.AllocsPerRun(1000, func() {
		r := off.Decide(propagation.SpanContext{}, "r1", t0)
		if off.StartClientOf(&r, 1, t0) != nil {
			t.Fatal("unsampled attempt span")
		}
	}); n != 0 {
		t.Errorf("%v allocations per unsampled request", n)
	}
}
