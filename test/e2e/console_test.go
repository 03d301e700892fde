package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/metricshistory"
)

type consoleGraph struct {
	Nodes []struct {
		ID, Kind string
		Versions []string
	}
	Edges []struct {
		ID, Source, Target string
		RPS                *float64
		MTLS               *bool
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
				// The demo runs without TLS: the called side says so.
				gw = e.MTLS != nil && !*e.MTLS
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

	// Instances as their callers see them: the gateway sends to greeter.
	eventually(t, 30*time.Second, "greeter's instances seen by the gateway", func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/console/instances?mesh=demo&node=greeter", d.api))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var ir struct {
			Instances []struct {
				Address, Health string
				Observers       []struct{ Proxy, HealthCheck string }
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&ir); err != nil {
			return err
		}
		for _, in := range ir.Instances {
			for _, o := range in.Observers {
				if strings.Contains(o.Proxy, "/virtualGateway/") && in.Health == "healthy" && in.Address != "" {
					return nil
				}
			}
		}
		return fmt.Errorf("instances %+v", ir.Instances)
	})

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

// With --prometheus-url the console reads the same metrics from a real
// Prometheus scraping the demo's proxies: a control plane that receives
// no metrics stream itself shows the demo's edges with non-zero rates, and
// the Prometheus reader answers route-level stats with quantiles.
func TestConsoleFromPrometheus(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	var admins []string
	for _, a := range d.admins {
		admins = append(admins, a)
	}
	prom := startPrometheus(t, map[string][]string{"/stats/prometheus": admins})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", d.gateway)); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()

	reader, err := metricshistory.NewPrometheus(prom)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "route stats from Prometheus", func() error {
		st, err := reader.Stats(context.Background(), metricshistory.Query{
			Selector: metricshistory.Labels{Reporter: "source", DestinationService: "greeting.demo.local"},
			GroupBy:  []string{metricshistory.LabelRoute, metricshistory.LabelDestinationWorkload}, Window: 30 * time.Second})
		if err != nil {
			return err
		}
		var busy int
		for _, s := range st {
			if s.RPS > 0 && s.Labels.Route != "" && s.Labels.Route != "unknown" && !math.IsNaN(s.P99) && s.P99 > 0 {
				busy++
			}
		}
		if busy == 0 {
			return fmt.Errorf("no route with traffic and p99 in %+v", st)
		}
		return nil
	})
	// The destination side is another proxy, scraped on its own
	// schedule: its series may have no rate yet when the source side's
	// has one.
	eventually(t, 30*time.Second, "a range of the destination's stats from Prometheus", func() error {
		end := time.Now()
		series, err := reader.Range(context.Background(), metricshistory.RangeQuery{
			Selector: metricshistory.Labels{Reporter: "destination", DestinationService: "greeter.demo.local"},
			Start:    end.Add(-time.Minute), End: end, Step: 5 * time.Second})
		if err != nil {
			return err
		}
		if len(series) != 1 || len(series[0].Points) == 0 {
			return fmt.Errorf("range: %+v, want one series with points", series)
		}
		return nil
	})

	// A control plane reading Prometheus (it has none of the demo's
	// resources and receives no stream) draws the edges from Prometheus.
	cp := exec.Command(binary, "server", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--prometheus-url", prom)
	logs := &syncBuffer{}
	cp.Stdout, cp.Stderr = logs, logs
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Process.Signal(syscall.SIGTERM); cp.Wait() })
	var api string
	eventually(t, 20*time.Second, "second control plane's address", func() error {
		if api = logAddr(logs.String(), "control plane serving", "api"); api == "" {
			return fmt.Errorf("not serving yet: %s", logs.String())
		}
		return nil
	})
	eventually(t, 30*time.Second, "graph from Prometheus", func() error {
		resp, err := http.Get("http://" + api + "/v1/console/graph?window=30s")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var g consoleGraph
		if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
			return err
		}
		for _, e := range g.Edges {
			if e.RPS != nil && *e.RPS > 0 && e.Source == "demo/virtualNode/greeter" && e.Target == "demo/virtualService/name.demo.local" {
				return nil
			}
		}
		return fmt.Errorf("no greeter -> name.demo.local edge with traffic in %+v", g.Edges)
	})
}
