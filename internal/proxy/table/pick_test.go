package table

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// weightedCluster is a round-robin cluster of n healthy endpoints.
func weightedCluster(t testing.TB, n int, weight func(i int) uint32) *Cluster {
	t.Helper()
	c := &Cluster{Name: "c", PanicThreshold: defaultPanicThreshold}
	for i := range n {
		c.Endpoints = append(c.Endpoints, Endpoint{
			Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80),
			Healthy: true, Weight: weight(i),
		})
	}
	c.prepare()
	return c
}

func TestPickClusterDistribution(t *testing.T) {
	t.Parallel()
	a, b, z := &Cluster{Name: "a"}, &Cluster{Name: "b"}, &Cluster{Name: "zero"}
	r := &Route{Clusters: []WeightedCluster{{Name: "a", Weight: 80, Cluster: a}, {Name: "zero", Weight: 0, Cluster: z}, {Name: "b", Weight: 20, Cluster: b}}, TotalWeight: 100}
	rnd := rand.New(rand.NewPCG(7, 11))
	const n = 100_000
	counts := map[*Cluster]int{}
	for range n {
		counts[r.PickCluster(rnd.Uint32())]++
	}
	if counts[z] != 0 {
		t.Errorf("zero-weight cluster picked %d times", counts[z])
	}
	if share := float64(counts[a]) / n; math.Abs(share-0.8) > 0.01 {
		t.Errorf("80%% cluster got %.3f", share)
	}
	if share := float64(counts[b]) / n; math.Abs(share-0.2) > 0.01 {
		t.Errorf("20%% cluster got %.3f", share)
	}
	// The extremes of rnd land on the first and the last non-zero share.
	if got := r.PickCluster(0); got != a {
		t.Errorf("PickCluster(0) = %s, want a", got.Name)
	}
	if got := r.PickCluster(math.MaxUint32); got != b {
		t.Errorf("PickCluster(max) = %s, want b", got.Name)
	}
	single := &Route{Clusters: []WeightedCluster{{Name: "a", Weight: 1, Cluster: a}}, TotalWeight: 1}
	if single.PickCluster(12345) != a {
		t.Error("single cluster not picked")
	}
	if (&Route{DirectStatus: 503}).PickCluster(1) != nil {
		t.Error("direct response route picked a cluster")
	}
	tp := &TCPProxy{Clusters: r.Clusters, TotalWeight: 100}
	if tp.PickCluster(0) != a {
		t.Error("TCP proxy PickCluster(0) is not a")
	}
}

func TestRoundRobinFairness(t *testing.T) {
	t.Parallel()
	c := weightedCluster(t, 3, func(int) uint32 { return 1 })
	counts := make([]int, 3)
	var seq []int
	for range 300 {
		i, ok := c.PickIndex(0, nil, nil)
		if !ok {
			t.Fatal("no endpoint")
		}
		counts[i]++
		if len(seq) < 6 {
			seq = append(seq, i)
		}
	}
	if fmt.Sprint(counts) != "[100 100 100]" {
		t.Errorf("counts %v, want 100 each", counts)
	}
	if fmt.Sprint(seq) != "[0 1 2 0 1 2]" {
		t.Errorf("sequence %v, want round robin", seq)
	}
	ep, ok := c.Pick(0)
	if !ok || ep.Address != c.Endpoints[0].Address {
		t.Errorf("Pick = %v %v, want the first endpoint", ep, ok)
	}
}

func TestWeightedRoundRobin(t *testing.T) {
	t.Parallel()
	c := weightedCluster(t, 3, func(i int) uint32 { return []uint32{30, 10, 20}[i] })
	if len(c.schedule().sched) != 6 {
		t.Fatalf("schedule %v, want 6 slots (weights divided by their gcd)", c.schedule().sched)
	}
	counts := make([]int, 3)
	prev, runs := -1, 0
	for range 600 {
		i, _ := c.PickIndex(0, nil, nil)
		counts[i]++
		if i == prev {
			runs++
		}
		prev = i
	}
	if fmt.Sprint(counts) != "[300 100 200]" {
		t.Errorf("counts %v, want 3:1:2", counts)
	}
	if runs > 100 {
		t.Errorf("%d back-to-back repeats: the schedule is not spread", runs)
	}

	big := weightedCluster(t, 2, func(i int) uint32 { return []uint32{1_000_000, 1}[i] })
	if len(big.schedule().sched) > maxSchedule {
		t.Errorf("schedule of %d slots exceeds %d", len(big.schedule().sched), maxSchedule)
	}
	if n := countOf(big.schedule().sched, 1); n != 1 {
		t.Errorf("the light endpoint has %d slots, want 1", n)
	}
}

func countOf(s []int, v int) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func TestPanicMode(t *testing.T) {
	t.Parallel()
	mk := func(healthy []bool, threshold float64) *Cluster {
		c := &Cluster{Name: "c", PanicThreshold: threshold}
		for i, h := range healthy {
			c.Endpoints = append(c.Endpoints, Endpoint{Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 80), Healthy: h, Weight: 1})
		}
		c.prepare()
		return c
	}
	picked := func(c *Cluster) map[int]int {
		out := map[int]int{}
		for range 30 {
			i, ok := c.PickIndex(0, nil, nil)
			if ok {
				out[i]++
			}
		}
		return out
	}
	tests := []struct {
		name      string
		healthy   []bool
		threshold float64
		panic     bool
		want      string
	}{
		{"two of three healthy: healthy only", []bool{true, false, true}, 50, false, "map[0:15 2:15]"},
		{"one of three healthy: panic, all", []bool{false, true, false}, 50, true, "map[0:10 1:10 2:10]"},
		{"none healthy: panic, all", []bool{false, false}, 50, true, "map[0:15 1:15]"},
		{"none healthy, panic disabled", []bool{false, false}, 0, false, "map[]"},
		{"half healthy is not panic", []bool{true, false}, 50, false, "map[0:30]"},
		{"threshold 100: any unhealthy panics", []bool{true, true, false}, 100, true, "map[0:10 1:10 2:10]"},
	}
	for _, tt := range tests {
		c := mk(tt.healthy, tt.threshold)
		if c.Panic != tt.panic {
			t.Errorf("%s: Panic = %v, want %v", tt.name, c.Panic, tt.panic)
		}
		if got := fmt.Sprint(picked(c)); got != tt.want {
			t.Errorf("%s: picked %s, want %s", tt.name, got, tt.want)
		}
	}
	if _, ok := (&Cluster{NotFound: true}).Pick(1); ok {
		t.Error("a NotFound cluster picked an endpoint")
	}
}

func TestPickIndexSkip(t *testing.T) {
	c := weightedCluster(t, 4, func(int) uint32 { return 1 })
	c.Endpoints[3].Healthy = false
	c.prepare() // 3 of 4 healthy: no panic, schedule [0 1 2]
	ejected := map[int]bool{1: true}
	skip := func(i int) bool { return ejected[i] }
	counts := map[int]int{}
	for range 30 {
		i, ok := c.PickIndex(0, skip, nil)
		if !ok {
			t.Fatal("no endpoint")
		}
		counts[i]++
	}
	if counts[1] != 0 || counts[3] != 0 || counts[0] == 0 || counts[2] == 0 {
		t.Errorf("with 1 ejected and 3 unhealthy: %v", counts)
	}
	// Every healthy endpoint ejected: Envoy's panic routing, to any
	// endpoint that is not vetoed, even an unhealthy one.
	ejected = map[int]bool{0: true, 1: true, 2: true}
	if i, _ := c.PickIndex(0, skip, nil); i != 3 {
		t.Errorf("all healthy ejected: picked %d, want the unhealthy 3", i)
	}
	// Everything vetoed: skip is ignored rather than fail.
	ejected = map[int]bool{0: true, 1: true, 2: true, 3: true}
	if _, ok := c.PickIndex(0, skip, nil); !ok {
		t.Error("all vetoed: no endpoint")
	}
	if n := testing.AllocsPerRun(100, func() { c.PickIndex(0, skip, nil) }); n != 0 {
		t.Errorf("PickIndex allocates %.1f times", n)
	}
}

func TestPickPriorities(t *testing.T) {
	t.Parallel()
	c := &Cluster{Name: "c", PanicThreshold: 50, Endpoints: []Endpoint{
		{Healthy: true, Priority: 1, Weight: 1},
		{Healthy: true, Priority: 0, Weight: 1},
		{Healthy: false, Priority: 0, Weight: 1},
	}}
	c.prepare()
	for range 10 {
		if i, _ := c.PickIndex(0, nil, nil); i != 1 {
			t.Fatalf("picked %d, want the healthy priority-0 endpoint", i)
		}
	}
	c.Endpoints[1].Healthy = false
	c.PanicThreshold = 0 // one healthy of three would otherwise be panic
	c.prepare()
	if i, _ := c.PickIndex(0, nil, nil); i != 0 {
		t.Errorf("priority 0 down: picked %d, want priority 1", i)
	}
}

func TestLeastRequestAndRandom(t *testing.T) {
	t.Parallel()
	c := weightedCluster(t, 4, func(int) uint32 { return 1 })
	c.LB = LBLeastRequest
	load := []int64{5, 0, 5, 5}
	rnd := rand.New(rand.NewPCG(3, 4))
	counts := make([]int, 4)
	for range 4000 {
		i, _ := c.PickIndex(rnd.Uint64(), nil, func(i int) int64 { return load[i] })
		counts[i]++
	}
	// P2C picks the idle endpoint whenever it is one of the two drawn:
	// 7 times in 16 draws, plus its share of ties with itself.
	if counts[1] < 1600 {
		t.Errorf("least request: idle endpoint got %d of 4000 (%v)", counts[1], counts)
	}
	c.LB = LBRandom
	counts = make([]int, 4)
	for range 40_000 {
		i, _ := c.PickIndex(rnd.Uint64(), nil, nil)
		counts[i]++
	}
	for i, n := range counts {
		if math.Abs(float64(n)/40_000-0.25) > 0.02 {
			t.Errorf("random: endpoint %d got %d of 40000", i, n)
		}
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	c := weightedCluster(t, 8, func(i int) uint32 { return uint32(1 + i%2) })
	r := &Route{Clusters: []WeightedCluster{{Name: "a", Weight: 1, Cluster: c}, {Name: "b", Weight: 3, Cluster: c}}, TotalWeight: 4}
	ejected := [8]bool{2: true}
	if n := testing.AllocsPerRun(200, func() {
		cl := r.PickCluster(12345)
		cl.Pick(99)
		cl.PickIndex(99, func(i int) bool { return ejected[i] }, func(int) int64 { return 0 })
	}); n != 0 {
		t.Errorf("picking allocates %.1f times", n)
	}
}
