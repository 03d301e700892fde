package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

type consoleGraph struct {
	Nodes []struct {
		ID, Kind string
		Versions []string
	}
	Edges []struct {
		ID, Source, Target string
		RPS                *float64
		Idle               bool
		Split              []struct {
			VirtualNode     string
			RPS             *float64
			ConfiguredShare *float64
		}
	}
}

// The demo's proxies stream their mesh metrics to the control plane over
// the metrics service (the default, to the xDS address): the console's
// graph shows the gateway -> greeter and greeter -> greeting edges with
// non-zero rates and greeting's observed split beside its weights.
func TestConsoleGraphFromProxiesMetrics(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", d.gateway))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
	var g consoleGraph
	eventually(t, 40*time.Second, "graph edges with traffic", func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/console/graph?window=1m", d.api))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("%s: %s", resp.Status, b)
		}
		g = consoleGraph{}
		if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
			return err
		}
		var gw, greeting bool
		for _, e := range g.Edges {
			busy := e.RPS != nil && *e.RPS > 0
			if busy && strings.Contains(e.Source, "/virtualGateway/") && e.Target == "demo/virtualService/greeter.demo.local" {
				gw = true
			}
			if busy && e.Source == "demo/virtualNode/greeter" && strings.HasPrefix(e.Target, "demo/virtualService/greeting") {
				var configured int
				for _, sp := range e.Split {
					if sp.ConfiguredShare != nil {
						configured++
					}
				}
				greeting = configured >= 1
			}
		}
		if !gw || !greeting {
			return fmt.Errorf("gateway edge %v, greeter -> greeting edge with split %v: %+v", gw, greeting, g.Edges)
		}
		return nil
	})
	kinds := map[string]bool{}
	for _, n := range g.Nodes {
		kinds[n.Kind] = true
	}
	for _, k := range []string{"virtualGateway", "virtualNode", "virtualService"} {
		if !kinds[k] {
			t.Errorf("no %s node in %+v", k, g.Nodes)
		}
	}

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/console/metrics?kind=service&mesh=demo&name=greeter.demo.local&window=2m&step=10s", d.api))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct{ Points []struct{ RPS *float64 } }
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %s, %v", resp.Status, err)
	}
	var busy bool
	for _, p := range m.Points {
		busy = busy || (p.RPS != nil && *p.RPS > 0)
	}
	if !busy {
		t.Errorf("metrics of greeter.demo.local: no point with traffic in %+v", m.Points)
	}
	// The route label: on the proxies' own metrics, and through the
	// console's top routes.
	if prom := adminGet(t, d.admins["greeter-1"], "/stats/prometheus"); !strings.Contains(prom, `route="`) ||
		!strings.Contains(prom, `destination_service="greeting.demo.local"`) {
		t.Errorf("greeter's mesh metrics carry no route label")
	}
	top, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/console/top?mesh=demo&window=5m", d.api))
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		Slowest []struct{ Route, Service string }
	}
	err = json.NewDecoder(top.Body).Decode(&tr)
	top.Body.Close()
	if err != nil || len(tr.Slowest) == 0 {
		t.Fatalf("top: %v, %+v", err, tr)
	}
	var named bool
	for _, r := range tr.Slowest {
		named = named || (r.Route != "" && r.Route != "unknown")
	}
	if !named {
		t.Errorf("no named route among the slowest: %+v", tr.Slowest)
	}

	bad, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/console/metrics?kind=pod&name=x", d.api))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(bad.Body)
	bad.Body.Close()
	if bad.StatusCode != 400 || !strings.Contains(string(b), "kind") {
		t.Errorf("bad kind: %s %s, want 400 naming kind", bad.Status, b)
	}
}
