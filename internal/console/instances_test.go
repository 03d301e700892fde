package console

import (
	"fmt"
	"testing"
)

// TestMergeInstances: lists from several replicas are joined per
// instance, its observers united and its health the worst of all of
// them.
func TestMergeInstances(t *testing.T) {
	t.Parallel()
	obs := func(proxy, hc string, ejected bool) Observer {
		return Observer{Proxy: proxy, Cluster: "m/back", HealthCheck: hc, Ejected: ejected, EDSHealthy: true}
	}
	in := func(addr, health string, o ...Observer) Instance {
		return Instance{Mesh: "m", VirtualNode: "back", Address: addr, Health: health, Observers: o}
	}
	for _, tc := range []struct {
		name  string
		lists [][]Instance
		want  string
	}{
		{"none", nil, "[]"},
		{"one replica", [][]Instance{{in("10.0.0.1:80", "healthy", obs("p1", "healthy", false))}},
			"[10.0.0.1:80 healthy [p1]]"},
		{"same instance, worse view elsewhere", [][]Instance{
			{in("10.0.0.1:80", "healthy", obs("p2", "healthy", false))},
			{in("10.0.0.1:80", "pending", obs("p1", "pending", false))},
		}, "[10.0.0.1:80 pending [p1 p2]]"},
		{"ejected wins", [][]Instance{
			{in("10.0.0.1:80", "unhealthy", obs("p1", "failed", false))},
			{in("10.0.0.1:80", "ejected", obs("p2", "healthy", true))},
		}, "[10.0.0.1:80 ejected [p1 p2]]"},
		{"different instances sorted", [][]Instance{
			{in("10.0.0.2:80", "healthy", obs("p2", "none", false))},
			{in("10.0.0.1:80", "healthy", obs("p1", "none", false))},
		}, "[10.0.0.1:80 healthy [p1] 10.0.0.2:80 healthy [p2]]"},
	} {
		got := MergeInstances(tc.lists...)
		var parts []any
		for _, i := range got {
			var ps []string
			for _, o := range i.Observers {
				ps = append(ps, o.Proxy)
			}
			parts = append(parts, i.Address, i.Health, ps)
		}
		if s := fmt.Sprint(parts); s != tc.want && !(tc.want == "[]" && len(got) == 0) {
			t.Errorf("%s: %s, want %s", tc.name, s, tc.want)
		}
	}
}
