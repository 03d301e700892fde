package stats

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

func newTestStore(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := NewStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConcurrentUpdatesAreExact(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	sc := s.Scope("cluster.c.")
	c := sc.Counter("upstream_rq_total")
	g := sc.Gauge("upstream_rq_active")
	h := sc.Histogram("upstream_rq_time", Milliseconds)
	codes := sc.CodeCounters("upstream_rq")
	const goroutines, perG = 8, 5000
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perG {
				c.Inc()
				g.Inc()
				h.Record(uint64(j % 1000))
				codes.Inc(200 + (i+j)%3*100) // 200, 300, 400
				g.Dec()
				if j%100 == 0 {
					s.MergeHistograms() // merging concurrently with recording
				}
			}
		}()
	}
	wg.Wait()
	s.MergeHistograms()
	const total = goroutines * perG
	if c.Value() != total {
		t.Errorf("counter = %d, want %d", c.Value(), total)
	}
	if g.Value() != 0 {
		t.Errorf("gauge = %d, want 0", g.Value())
	}
	cum := h.Cumulative()
	if cum.Count != total {
		t.Errorf("histogram count = %d, want %d", cum.Count, total)
	}
	var wantSum uint64
	for j := range perG {
		wantSum += uint64(j % 1000)
	}
	if cum.Sum != wantSum*goroutines {
		t.Errorf("histogram sum = %d, want %d", cum.Sum, wantSum*goroutines)
	}
	var byCode uint64
	for _, code := range []int{200, 300, 400} {
		byCode += codes.Code(code).Value()
		if codes.Code(code).Value() != codes.Class(code).Value() {
			t.Errorf("code %d = %d, class = %d", code, codes.Code(code).Value(), codes.Class(code).Value())
		}
	}
	if byCode != total {
		t.Errorf("per-code counters sum to %d, want %d", byCode, total)
	}
}

func TestSameNameSameHandle(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	a := s.Scope("cluster.c.")
	b := s.Scope("cluster.c.")
	first := a.Counter("x")
	if again := a.Counter("x"); again != first || b.Counter("x") != first {
		t.Error("same counter name gave different handles")
	}
	if a.Gauge("g") != b.Gauge("g") || a.Histogram("h", Milliseconds) != b.Histogram("h", Bytes) || a.TextReadout("t") != b.TextReadout("t") {
		t.Error("same stat name gave different handles")
	}
	if a.CodeCounters("upstream_rq") != b.CodeCounters("upstream_rq") {
		t.Error("same code family gave different handles")
	}
	if a.CounterByCode("upstream_rq", 503) != a.CodeCounters("upstream_rq").Code(503) {
		t.Error("CounterByCode and CodeCounters disagree")
	}
	// Different scopes that spell the same full name share the stat.
	if s.Scope("cluster.").Counter("c.x") != a.Counter("x") {
		t.Error("same full name through another prefix gave a different handle")
	}
}

func names(t *testing.T, s *Store) []string {
	t.Helper()
	var b bytes.Buffer
	if err := s.WriteText(&b, nil, false); err != nil {
		t.Fatal(err)
	}
	var out []string
	for l := range strings.Lines(b.String()) {
		out = append(out, strings.SplitN(l, ":", 2)[0])
	}
	return out
}

func TestScopeRelease(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	old := s.Scope("cluster.a.")
	oldC := old.Counter("upstream_rq_total")
	oldC.Add(5)
	old.CodeCounters("upstream_rq").Inc(200)
	old.Histogram("upstream_rq_time", Milliseconds).Record(3)
	old.Gauge("membership_total").Set(2)
	old.TextReadout("version").Set("v1")
	gone := s.Scope("cluster.b.")
	gone.Counter("upstream_rq_total").Inc()

	// A new configuration acquires the clusters it keeps before the old
	// one is released: a's stats carry over, b's go away.
	next := s.Scope("cluster.a.")
	old.Release()
	old.Release() // idempotent
	gone.Release()
	if got := next.Counter("upstream_rq_total"); got != oldC || got.Value() != 5 {
		t.Errorf("kept cluster's counter: %p %d, want %p 5", got, got.Value(), oldC)
	}
	if n := names(t, s); slices.ContainsFunc(n, func(x string) bool { return strings.HasPrefix(x, "cluster.b.") }) {
		t.Errorf("released scope's stats still printed: %v", n)
	}
	if n := names(t, s); !slices.Contains(n, "cluster.a.upstream_rq_200") {
		t.Errorf("kept scope lost its code counter: %v", n)
	}

	// Releasing the last acquisition drops everything; a later scope of
	// the same name starts from zero.
	next.Release()
	if n := names(t, s); len(n) != 0 {
		t.Errorf("stats left after every scope was released: %v", n)
	}
	oldC.Inc() // a stale handle is harmless
	again := s.Scope("cluster.a.")
	if v := again.Counter("upstream_rq_total").Value(); v != 0 {
		t.Errorf("re-added cluster's counter = %d, want 0", v)
	}
	// A released scope still hands out (detached) handles.
	old.Counter("late").Inc()
	if n := names(t, s); slices.Contains(n, "cluster.a.late") {
		t.Error("counter created through a released acquisition was registered")
	}
}

func TestSharedStatOutlivesOneScope(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	a := s.Scope("cluster.")
	b := s.Scope("cluster.c.")
	a.Counter("c.x").Inc()
	b.Counter("x").Inc()
	a.Release()
	if n := names(t, s); !slices.Contains(n, "cluster.c.x") {
		t.Errorf("stat referenced by a live scope dropped: %v", n)
	}
	b.Release()
	if n := names(t, s); len(n) != 0 {
		t.Errorf("stats left: %v", n)
	}
}

func TestNilHandlesAreNoOps(t *testing.T) {
	t.Parallel()
	var c *Counter
	var g *Gauge
	var h *Histogram
	var tr *TextReadout
	var cc *CodeCounters
	c.Inc()
	c.Add(3)
	g.Set(1)
	g.Inc()
	h.Record(1)
	h.RecordDuration(5)
	tr.Set("x")
	cc.Inc(200)
	if c.Value() != 0 || g.Value() != 0 || tr.Value() != "" || h.Used() || cc.Code(200) != nil {
		t.Error("nil handles hold values")
	}
}

func TestCodeCountersRange(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	cc := s.Scope("cluster.c.").CodeCounters("upstream_rq")
	for _, code := range []int{-1, 0, 99, 600, 1000} {
		cc.Inc(code)
		if cc.Code(code) != nil || cc.Class(code) != nil {
			t.Errorf("code %d has a counter", code)
		}
	}
	cc.Inc(100)
	cc.Inc(599)
	cc.Inc(503)
	want := []string{"cluster.c.upstream_rq_100", "cluster.c.upstream_rq_1xx", "cluster.c.upstream_rq_503", "cluster.c.upstream_rq_599", "cluster.c.upstream_rq_5xx"}
	if n := names(t, s); !slices.Equal(n, want) {
		t.Errorf("names = %v, want %v", n, want)
	}
	if v := cc.Class(555).Value(); v != 2 {
		t.Errorf("5xx = %d, want 2", v)
	}
}

func TestScopeTagsAndFixedTags(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{FixedTags: []Tag{{TagAppMeshMesh, "demo"}, {TagAppMeshVirtualNode, "greeter"}}})
	ext := s.ScopeWithTags("appmesh.", []Tag{{TagExtTargetVirtualNode, "greeting-v1"}, {TagExtTargetVirtualService, "greeting.demo.local"}})
	m := ext.Counter("RequestCountPerTarget").Metric()
	if want := "appmesh.TargetVirtualNode.greeting-v1.TargetVirtualService.greeting.demo.local.RequestCountPerTarget"; m.Name != want {
		t.Errorf("name = %q, want %q", m.Name, want)
	}
	if m.TagExtractedName != "appmesh.RequestCountPerTarget" {
		t.Errorf("extracted = %q", m.TagExtractedName)
	}
	want := []Tag{{TagExtTargetVirtualNode, "greeting-v1"}, {TagExtTargetVirtualService, "greeting.demo.local"}, {TagAppMeshMesh, "demo"}, {TagAppMeshVirtualNode, "greeter"}}
	if !slices.Equal(m.Tags, want) {
		t.Errorf("tags = %v, want %v", m.Tags, want)
	}
	// A nested scope keeps the tags; another target is another scope.
	if got := ext.Scope("grpc.").Counter("x").Metric().Name; got != "appmesh.grpc.TargetVirtualNode.greeting-v1.TargetVirtualService.greeting.demo.local.x" {
		t.Errorf("nested name = %q", got)
	}
	other := s.ScopeWithTags("appmesh.", []Tag{{TagExtTargetVirtualNode, "greeting-v2"}})
	if other.Counter("RequestCountPerTarget") == ext.Counter("RequestCountPerTarget") {
		t.Error("different targets share a counter")
	}
	// A scope tag named like an extracted one does not duplicate it.
	dup := s.ScopeWithTags("cluster.c.", []Tag{{TagClusterName, "other"}})
	if tags := dup.Counter("x").Metric().Tags; len(tags) != 3 || tags[0] != (Tag{TagClusterName, "c"}) {
		t.Errorf("tags = %v", tags)
	}
}

func TestResetCounters(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	sc := s.Scope("x.")
	c := sc.Counter("c")
	g := sc.Gauge("g")
	c.Add(10)
	g.Set(4)
	if snap := s.Snapshot(fixedTime); snap.Counters[0].Delta != 10 {
		t.Fatalf("first delta = %d", snap.Counters[0].Delta)
	}
	c.Add(2)
	s.ResetCounters()
	c.Add(3)
	snap := s.Snapshot(fixedTime)
	if c.Value() != 3 || snap.Counters[0].Delta != 3 || snap.Counters[0].Value != 3 {
		t.Errorf("after reset: value %d, snapshot %+v", c.Value(), snap.Counters[0])
	}
	if g.Value() != 4 {
		t.Error("reset touched a gauge")
	}
	if !c.Used() {
		t.Error("reset cleared used")
	}
}

func TestFilterAndUsedOnly(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	sc := s.Scope("cluster.c.")
	sc.Counter("used").Inc()
	sc.Counter("unused")
	sc.Gauge("gauge_unused")
	sc.Histogram("hist_unused", Milliseconds)
	var b bytes.Buffer
	if err := s.WriteText(&b, regexp.MustCompile(`used$`), true); err != nil {
		t.Fatal(err)
	}
	if b.String() != "cluster.c.used: 1\n" {
		t.Errorf("got %q", b.String())
	}
	b.Reset()
	if err := s.WriteText(&b, nil, false); err != nil {
		t.Fatal(err)
	}
	want := "cluster.c.gauge_unused: 0\ncluster.c.unused: 0\ncluster.c.used: 1\ncluster.c.hist_unused: No recorded values\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestFixedTagsFromEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env     map[string]string
		gateway bool
		want    []Tag
		err     bool
	}{
		{env: map[string]string{}, want: nil},
		{env: map[string]string{EnvEnableStatsTags: "1"}, want: []Tag{{TagAppMeshMesh, "m"}, {TagAppMeshVirtualNode, "n"}}},
		{env: map[string]string{EnvEnableStatsTags: "true"}, gateway: true, want: []Tag{{TagAppMeshMesh, "m"}, {TagAppMeshVirtualGateway, "n"}}},
		{env: map[string]string{EnvMetricExtensionVersion: "1"}, want: []Tag{{TagExtMesh, "m"}, {TagExtVirtualNode, "n"}}},
		{env: map[string]string{EnvMetricExtensionVersion: "2"}, want: nil},
		{env: map[string]string{EnvEnableStatsTags: "1", EnvMetricExtensionVersion: "1"}, gateway: true,
			want: []Tag{{TagAppMeshMesh, "m"}, {TagAppMeshVirtualGateway, "n"}, {TagExtMesh, "m"}, {TagExtVirtualGateway, "n"}}},
		{env: map[string]string{EnvEnableStatsTags: "maybe"}, err: true},
	} {
		got, err := FixedTagsFromEnv(func(k string) string { return tc.env[k] }, "m", "n", tc.gateway)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("%v: got %v, %v; want %v (error %v)", tc.env, got, err, tc.want, tc.err)
		}
	}
}

func FuzzParseTruthy(f *testing.F) {
	for _, s := range []string{"", "1", "true", "On", " no ", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseTruthy(s)
		if err != nil && v {
			t.Fatal("true with an error")
		}
		for _, r := range s {
			if r >= 0x80 {
				return // case folding outside ASCII is not the point
			}
		}
		v2, err2 := ParseTruthy(strings.ToUpper(s))
		if v != v2 || (err == nil) != (err2 == nil) {
			t.Fatalf("case-sensitive: %q", s)
		}
	})
}
