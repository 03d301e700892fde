package hcm

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/allocstest"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/tracing"
	"github.com/meshlens/meshlens/internal/tracing/propagation"
	"github.com/meshlens/meshlens/internal/tracing/sampling"
)

// TestUnsampledTraceAllocatesNothing: on a chain that traces, a request
// head sampling drops (with an incoming context or without) costs no
// allocation: the trace begins, nothing but a shared "b3: 0" (when no
// decision came in) is written upstream, and it ends.
func TestUnsampledTraceAllocatesNothing(t *testing.T) {
	smp, err := sampling.New(sampling.Config{Percent: 0})
	if err != nil {
		t.Fatal(err)
	}
	fs, _ := propagation.ParseFormats("w3c,b3multi")
	cc := &ChainConfig{
		Chain:        &table.FilterChain{HTTP: &table.HTTPManager{Tracing: &table.Tracing{}}},
		Tracer:       tracing.New(tracing.Config{Sampler: smp}),
		TraceFormats: fs,
	}
	route := &table.Route{Name: "r", Match: table.RouteMatch{Prefix: "/"}}
	for _, hdr := range []http.Header{
		{},
		{"Traceparent": {"00-463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-00"}},
		{"X-B3-Traceid": {"463ac35c9f6413ad48485a3953bb6124"}, "X-B3-Spanid": {"a2fb4a1d1a96d312"}, "X-B3-Sampled": {"0"}},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://svc/x", nil)
		r.Header = hdr
		w := newRecorderStream(r)
		up := hdr.Clone()
		ex := &Exchange{route: route, start: time.Now()}
		n := allocstest.Fewest(1000, func() {
			ex.beginTrace(r, cc, nil)
			if ex.Trace.Span != nil {
				t.Fatal("sampled at 0 %")
			}
			ex.InjectTrace(up, ex.Trace.Span.StartClient(1, ex.start))
			ex.Status = 200
			ex.endTrace(w, r, cc, nil, time.Millisecond)
		})
		if n != 0 {
			t.Errorf("headers %v: %v allocations per unsampled request, want 0", hdr, n)
		}
		// A request that brought no decision tells the next hop (b3: 0);
		// one that brought one keeps its headers as they came.
		want := hdr.Clone()
		if len(hdr) == 0 {
			want["B3"] = []string{"0"}
		}
		if !reflect.DeepEqual(up, want) {
			t.Errorf("headers %v: upstream got %v, want %v", hdr, up, want)
		}
	}
}
