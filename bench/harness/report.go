package harness

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// stat is the median and spread of one figure over repetitions.
type stat struct{ med, lo, hi float64 }

func statOf(v []float64) stat {
	if len(v) == 0 {
		return stat{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med, s[0], s[len(s)-1]}
}

func (s stat) fmt(prec int) string {
	if s.lo == s.hi {
		return fmt.Sprintf("%.*f", prec, s.med)
	}
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, s.med, prec, s.lo, prec, s.hi)
}

// agg indexes runs by variant, scenario, load and path.
type agg map[string][]Run

func key(variant, scenario, load, path string) string {
	return variant + "|" + scenario + "|" + load + "|" + path
}

func aggregate(runs []Run) agg {
	a := agg{}
	for _, r := range runs {
		k := key(r.Variant, r.Scenario, r.Load, r.Path)
		a[k] = append(a[k], r)
	}
	return a
}

func (a agg) stat(variant, scenario, load, path string, f func(Run) float64) (stat, bool) {
	runs := a[key(variant, scenario, load, path)]
	if len(runs) == 0 {
		return stat{}, false
	}
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	return statOf(v), true
}

// hopCPU is the CPU per 1000 requests of each process on a path (per hop,
// as a median over repetitions), and their sum.
func (a agg) hopCPU(variant, scenario, load, path string) (per []stat, total stat, ok bool) {
	runs := a[key(variant, scenario, load, path)]
	if len(runs) == 0 || len(runs[0].Procs) == 0 {
		return nil, stat{}, false
	}
	for i := range runs[0].Procs {
		v := make([]float64, 0, len(runs))
		for _, r := range runs {
			if i < len(r.Procs) {
				v = append(v, r.Procs[i].CPUPer1000)
			}
		}
		per = append(per, statOf(v))
	}
	sums := make([]float64, 0, len(runs))
	for _, r := range runs {
		var s float64
		for _, p := range r.Procs {
			s += p.CPUPer1000
		}
		sums = append(sums, s)
	}
	return per, statOf(sums), true
}

func (a agg) peakRSS(variant, scenario, load, path string) float64 {
	var m float64
	for _, r := range a[key(variant, scenario, load, path)] {
		for _, p := range r.Procs {
			m = max(m, p.RSSPeakMB)
		}
	}
	return m
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

var pathLabel = map[string]string{
	pathDirect: "direct", pathML1: "meshlens, 1 hop", pathML2: "meshlens, 2 hops",
	pathHA1: "HAProxy, 1 hop", pathHA2: "HAProxy, 2 hops",
	pathRelay1: "Go relay, 1 hop",
}

func scenarioByID(id string) Scenario {
	for _, s := range scenarios {
		if s.ID == id {
			return s
		}
	}
	return Scenario{ID: id}
}

// sections renders every generated section of BENCHMARKS.md.
func sections(res *Results) map[string]string {
	a := aggregate(res.Runs)
	out := map[string]string{}
	var b strings.Builder

	// Machine and method facts.
	m := res.Machine
	fmt.Fprintf(&b, "| | |\n|---|---|\n| CPU | %s |\n| cores | %d |\n| memory | %d GiB |\n| kernel | %s |\n| Go | %s |\n| HAProxy | %s |\n| load generator | %s |\n| meshlens commit | %s |\n| run | %s, %s to %s |\n| repetitions | %d, paths interleaved |\n| each run | %.0f s measured after warm-up, %d connections |\n",
		m.CPU, m.Cores, m.MemoryGiB, m.Kernel, m.Go, m.HAProxy, m.LoadGen, m.Commit, res.Mode,
		res.Started.Format("2006-01-02 15:04"), res.Finished.Format("15:04 MST"), res.Reps, res.DurationS, res.Conns)
	if len(res.Runs) > 0 {
		var foreign []float64
		redone := 0
		for _, r := range res.Runs {
			foreign = append(foreign, r.ForeignCPU)
			redone += max(0, r.Attempts-1)
		}
		fs := statOf(foreign)
		fmt.Fprintf(&b, "| other workloads | processes outside the benchmark used %.2f cores during the median run (max %.2f); %d runs were redone because they used more than the limit |\n", fs.med, fs.hi, redone)
	}
	out["machine"] = b.String()

	// Latency at fixed rates.
	b.Reset()
	for _, s := range scenarios {
		for _, load := range s.Loads {
			if load == closedLoop {
				continue
			}
			ln := loadName(load)
			d50, ok := a.stat("default", s.ID, ln, pathDirect, func(r Run) float64 { return r.P50 })
			if !ok {
				continue
			}
			d99, _ := a.stat("default", s.ID, ln, pathDirect, func(r Run) float64 { return r.P99 })
			fmt.Fprintf(&b, "\n**%s %s at %s** (ms; median over repetitions, min–max in brackets)\n\n", s.Proto, s.Payload, ln)
			b.WriteString("| path | p50 | p90 | p99 | p99.9 | p50 added | p99 added | achieved rps | failed |\n|---|---|---|---|---|---|---|---|---|\n")
			for _, p := range allPaths {
				p50, ok := a.stat("default", s.ID, ln, p, func(r Run) float64 { return r.P50 })
				if !ok {
					continue
				}
				p90, _ := a.stat("default", s.ID, ln, p, func(r Run) float64 { return r.P90 })
				p99, _ := a.stat("default", s.ID, ln, p, func(r Run) float64 { return r.P99 })
				p999, _ := a.stat("default", s.ID, ln, p, func(r Run) float64 { return r.P999 })
				rps, _ := a.stat("default", s.ID, ln, p, func(r Run) float64 { return r.Throughput })
				failed, _ := a.stat("default", s.ID, ln, p, func(r Run) float64 { return float64(r.Errors + r.BadStatus) })
				added50, added99 := "–", "–"
				if p != pathDirect {
					added50 = fmt.Sprintf("%+.3f", p50.med-d50.med)
					added99 = fmt.Sprintf("%+.3f", p99.med-d99.med)
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %.0f | %.0f |\n", pathLabel[p], p50.fmt(3), p90.fmt(3), p99.fmt(3), p999.fmt(2),
					added50, added99, rps.med, failed.hi)
			}
		}
	}
	out["latency"] = b.String()

	// Maximum throughput.
	b.Reset()
	b.WriteString("| scenario | direct | meshlens 1 hop | meshlens 2 hops | HAProxy 1 hop | HAProxy 2 hops | meshlens/HAProxy 1 hop | 2 hops |\n|---|---|---|---|---|---|---|---|\n")
	for _, s := range scenarios {
		cells := map[string]stat{}
		for _, p := range allPaths {
			if st, ok := a.stat("default", s.ID, "max", p, func(r Run) float64 { return r.Throughput }); ok {
				cells[p] = st
			}
		}
		if len(cells) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Proto, s.Payload,
			cells[pathDirect].fmt(0), cells[pathML1].fmt(0), cells[pathML2].fmt(0), cells[pathHA1].fmt(0), cells[pathHA2].fmt(0),
			ratio(cells[pathML1].med, cells[pathHA1].med), ratio(cells[pathML2].med, cells[pathHA2].med))
	}
	b.WriteString("\nRequests per second over 16 connections, closed loop (each connection sends its next request when the last is answered); the load generator, the application and the proxies share the machine's cores.\n")
	// Where the cores went at that rate, one hop: a proxy's own CPU, and
	// what the two ends spent per request with it on the path.
	endCost := func(name string) func(Run) float64 {
		return func(r Run) float64 {
			for _, pc := range r.Ends {
				if pc.Name == name {
					return pc.CPUPer1000 * 1000
				}
			}
			return 0
		}
	}
	proxyCost := func(r Run) float64 {
		var sum float64
		for _, pc := range r.Procs {
			sum += pc.CPUPer1000 * 1000
		}
		return sum
	}
	// syscalls is the read and write system calls per request of the
	// processes named (all of a path's proxies when name is empty).
	syscalls := func(name string) (func(Run) float64, func(Run) float64) {
		pick := func(r Run) []ProcCost {
			if name == "" {
				return r.Procs
			}
			return r.Ends
		}
		sum := func(f func(ProcCost) float64) func(Run) float64 {
			return func(r Run) float64 {
				var n float64
				for _, pc := range pick(r) {
					if name == "" || pc.Name == name {
						n += f(pc)
					}
				}
				return n
			}
		}
		return sum(func(pc ProcCost) float64 { return pc.ReadsPerReq }), sum(func(pc ProcCost) float64 { return pc.WritesPerReq })
	}
	rw := func(s Scenario, p, name string) string {
		rf, wf := syscalls(name)
		r, ok1 := a.stat("default", s.ID, "max", p, rf)
		w, ok2 := a.stat("default", s.ID, "max", p, wf)
		if !ok1 || !ok2 || r.med == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f, %.2f", r.med, w.med)
	}
	var rows strings.Builder
	for _, s := range scenarios {
		for _, p := range []string{pathDirect, pathML1, pathHA1} {
			app, ok := a.stat("default", s.ID, "max", p, endCost("app"))
			if !ok || app.med == 0 {
				continue
			}
			lg, _ := a.stat("default", s.ID, "max", p, endCost("loadgen"))
			px, _ := a.stat("default", s.ID, "max", p, proxyCost)
			proxy, proxyRW := "–", "–"
			if p != pathDirect {
				proxy = px.fmt(1)
			}
			if p == pathML1 {
				proxyRW = rw(s, p, "")
			}
			fmt.Fprintf(&rows, "| %s %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Proto, s.Payload, pathLabel[p], proxy, app.fmt(1), lg.fmt(1),
				proxyRW, rw(s, p, "app"), rw(s, p, "loadgen"))
		}
	}
	if rows.Len() > 0 {
		b.WriteString("\nCPU per request at the maximum rate, one hop (µs; median, min–max): the proxy's, and what the application and the load generator spent with it on the path; then the read and write system calls per request of each (medians, from `/proc/<pid>/io`, which does not count HAProxy's `recv` and `send`). A proxy that makes the ends work harder per request costs throughput beyond its own CPU.\n\n")
		b.WriteString("| scenario | path | proxy | application | load generator | proxy reads, writes | application reads, writes | load generator reads, writes |\n|---|---|---|---|---|---|---|---|\n")
		b.WriteString(rows.String())
	}
	b.WriteString(splitTable(a, scenarios))
	out["throughput"] = b.String()

	// Cost per request.
	b.Reset()
	b.WriteString("| scenario, load | meshlens 1 hop | meshlens 2 hops: client, server sidecar | HAProxy 1 hop | HAProxy 2 hops: outer, inner | meshlens/HAProxy per hop (1 hop) | (2 hops) |\n|---|---|---|---|---|---|---|\n")
	for _, s := range scenarios {
		for _, load := range s.Loads {
			ln := loadName(load)
			ml1, _, ok1 := a.hopCPU("default", s.ID, ln, pathML1)
			ml2, ml2t, ok2 := a.hopCPU("default", s.ID, ln, pathML2)
			ha1, _, ok3 := a.hopCPU("default", s.ID, ln, pathHA1)
			ha2, ha2t, ok4 := a.hopCPU("default", s.ID, ln, pathHA2)
			if !ok1 || !ok2 || !ok3 || !ok4 {
				continue
			}
			fmt.Fprintf(&b, "| %s %s, %s | %s | %s, %s | %s | %s, %s | %s | %s |\n", s.Proto, s.Payload, ln,
				ml1[0].fmt(3), ml2[0].fmt(3), ml2[1].fmt(3), ha1[0].fmt(3), ha2[0].fmt(3), ha2[1].fmt(3),
				ratio(ml1[0].med, ha1[0].med), ratio(ml2t.med, ha2t.med))
		}
	}
	b.WriteString("\nCPU seconds (user + system, from `/proc/<pid>/stat`) of each proxy process per 1000 requests, median (min–max) over repetitions. In closed-loop rows the figure is per 1000 requests at whatever rate the path reached.\n\n")
	b.WriteString("| process | RSS idle (MB) | CPU idle (ms per s) | peak RSS under 5000 rps, http1 1k (MB) |\n|---|---|---|---|\n")
	names := make([]string, 0, len(res.IdleRSSMB))
	for n := range res.IdleRSSMB {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		peak := 0.0
		for _, r := range res.Runs {
			if r.Variant == "default" && r.Rate == 5000 {
				for _, p := range r.Procs {
					if p.Name == n {
						peak = max(peak, p.RSSPeakMB)
					}
				}
			}
		}
		idleCPU := "–"
		if ms, ok := res.IdleCPUMs[n]; ok {
			idleCPU = fmt.Sprintf("%.2f", ms)
		}
		fmt.Fprintf(&b, "| %s | %.1f | %s | %s |\n", n, res.IdleRSSMB[n], idleCPU, orDash(peak))
	}
	if res.SidecarBinary != "" {
		fmt.Fprintf(&b, "\nThe sidecars run %s. Idle: configured by the control plane, every path probed once, then left alone for a second; the idle CPU is counted over the next %.0f s (every thread's `schedstat`).\n", res.SidecarBinary, idleCPUWindow.Seconds())
	}
	b.WriteString(idleConnsTable(res))
	if g := res.Goroutines; g != nil {
		fmt.Fprintf(&b, "\nGoroutines of the server sidecar: %d idle, %d with %d client connections under load: %.1f per connection.\n", g.Idle, g.Loaded, g.Conns, g.PerConn)
	}
	out["cost"] = b.String()

	// Variants.
	b.Reset()
	b.WriteString("| scenario, load | path | default p50 / p99 (ms) | access log on | stats off | every core | default CPU-s/1000 (all hops) | access log on | stats off | every core |\n|---|---|---|---|---|---|---|---|---|---|\n")
	anyRow := false
	for _, id := range []string{"http1-1k", "grpc-1k"} {
		s := scenarioByID(id)
		for _, ln := range []string{"1000rps", "max"} {
			for _, p := range []string{pathML1, pathML2} {
				row := []string{}
				cpus := []string{}
				have := false
				for _, v := range []string{"default", "accesslog-on", "stats-off", "every-core"} {
					p50, ok := a.stat(v, id, ln, p, func(r Run) float64 { return r.P50 })
					p99, _ := a.stat(v, id, ln, p, func(r Run) float64 { return r.P99 })
					_, tot, _ := a.hopCPU(v, id, ln, p)
					if !ok {
						row, cpus = append(row, "–"), append(cpus, "–")
						continue
					}
					if v != "default" {
						have = true
					}
					if ln == "max" {
						rps, _ := a.stat(v, id, ln, p, func(r Run) float64 { return r.Throughput })
						row = append(row, fmt.Sprintf("%.0f rps", rps.med))
					} else {
						row = append(row, fmt.Sprintf("%.3f / %.3f", p50.med, p99.med))
					}
					cpus = append(cpus, fmt.Sprintf("%.3f", tot.med))
				}
				if !have {
					continue
				}
				anyRow = true
				fmt.Fprintf(&b, "| %s %s, %s | %s | %s | %s |\n", s.Proto, s.Payload, ln, pathLabel[p], strings.Join(row, " | "), strings.Join(cpus, " | "))
			}
		}
	}
	if !anyRow {
		b.Reset()
		b.WriteString("No variant was measured in this run.\n")
	}
	out["variants"] = b.String()

	out["tracing"] = tracingTable(res, a)
	out["floor"] = floorTable(res, a)

	// Microbenchmarks.
	b.Reset()
	b.WriteString("| package | benchmark | ns/op | B/op | allocs/op |\n|---|---|---|---|---|\n")
	for _, g := range res.GoBench {
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f | %.0f |\n", g.Package, g.Name, g.NsPerOp, g.BytesPerOp, g.AllocsPerOp)
	}
	out["gobench"] = b.String()

	// Control plane.
	b.Reset()
	b.WriteString("| N streams | services / endpoints | apply, register (s) | all configured (s) | server CPU to configure all (s) | route change p50 / p99 / max (ms) | endpoint change p50 / p99 / max (ms) | CPU per change (s) | RSS loaded / connected / peak (MB) |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range res.XDS {
		r := x.Result
		if r == nil {
			continue
		}
		status := ""
		if x.Error != "" {
			status = " (failed: see notes)"
		}
		setup := ""
		if r.Replicas > 1 {
			setup = fmt.Sprintf(" (%d replicas, etcd)", r.Replicas)
		}
		fmt.Fprintf(&b, "| %d%s%s | %d / %d | %.1f, %.1f | %.1f | %.1f | %.0f / %.0f / %.0f | %.0f / %.0f / %.0f | %.2f, %.2f | %.0f / %.0f / %.0f |\n",
			r.Streams, setup, status, r.Services, r.Endpoints, r.ApplySeconds, r.RegisterSeconds, r.ConnectSeconds, r.ConnectServerCPU,
			r.Route.P50, r.Route.P99, r.Route.Max, r.Endpoint.P50, r.Endpoint.P99, r.Endpoint.Max,
			r.Route.ServerCPU, r.Endpoint.ServerCPU, r.RSSLoadedMB, r.RSSConnectedMB, r.RSSPeakMB)
	}
	for _, x := range res.XDS {
		if r := x.Result; r != nil && r.Replicas > 1 {
			fmt.Fprintf(&b, "\nN=%d on %d replicas sharing a 3-member etcd cluster: the figures above sum the replicas; RSS per replica %s MB, per etcd member %s MB.\n",
				r.Streams, r.Replicas, joinMB(r.ReplicaRSSMB), joinMB(r.EtcdRSSMB))
		}
	}
	out["xds"] = b.String()

	out["targets"] = targets(res, a)

	// Profiles.
	b.Reset()
	for _, p := range res.Profiles {
		fmt.Fprintf(&b, "\n%s:\n\n```\n%s```\n", p.Name, topLines(p.Top, 18))
	}
	out["profiles"] = b.String()

	// Notes and failures.
	b.Reset()
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	for _, f := range res.Failures {
		fmt.Fprintf(&b, "- **failed:** %s\n", strings.ReplaceAll(f, "\n", " "))
	}
	if b.Len() == 0 {
		b.WriteString("- none\n")
	}
	out["notes"] = b.String()
	return out
}

func orDash(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

// topLines keeps pprof's header and the first n rows.
func topLines(top string, n int) string {
	lines := strings.Split(top, "\n")
	var out []string
	rows := 0
	header := true
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "flat") {
			header = false
			out = append(out, l)
			continue
		}
		if header {
			if strings.HasPrefix(l, "Showing") || strings.HasPrefix(l, "Duration") || strings.HasPrefix(l, "Type") {
				out = append(out, l)
			}
			continue
		}
		if rows < n && strings.TrimSpace(l) != "" {
			out = append(out, l)
			rows++
		}
	}
	return strings.Join(out, "\n") + "\n"
}

func targets(res *Results, a agg) string {
	var b strings.Builder
	b.WriteString("| target | measured | met |\n|---|---|---|\n")
	row := func(target, measured string, met bool, known bool) {
		v := "no"
		switch {
		case !known:
			v = "not measured"
		case met:
			v = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", target, measured, v)
	}
	for _, id := range []string{"http1-1k", "grpc-1k"} {
		s := scenarioByID(id)
		d50, ok1 := a.stat("default", id, "1000rps", pathDirect, func(r Run) float64 { return r.P50 })
		m50, ok2 := a.stat("default", id, "1000rps", pathML2, func(r Run) float64 { return r.P50 })
		d99, _ := a.stat("default", id, "1000rps", pathDirect, func(r Run) float64 { return r.P99 })
		m99, _ := a.stat("default", id, "1000rps", pathML2, func(r Run) float64 { return r.P99 })
		add50, add99 := m50.med-d50.med, m99.med-d99.med
		row(fmt.Sprintf("%s: two meshlens hops add ≤ 0.5 ms to p50 at 1000 rps", s.Proto), fmt.Sprintf("%+.3f ms", add50), add50 <= 0.5, ok1 && ok2)
		row(fmt.Sprintf("%s: two meshlens hops add ≤ 2 ms to p99 at 1000 rps", s.Proto), fmt.Sprintf("%+.3f ms", add99), add99 <= 2, ok1 && ok2)

		ml2, _, ok3 := a.hopCPU("default", id, "1000rps", pathML2)
		ha2, _, ok4 := a.hopCPU("default", id, "1000rps", pathHA2)
		if ok3 && ok4 {
			worst := max(ml2[0].med, ml2[1].med)
			haHop := (ha2[0].med + ha2[1].med) / 2
			row(fmt.Sprintf("%s: each meshlens proxy ≤ 0.15 CPU-s per 1000 requests", s.Proto),
				fmt.Sprintf("client %.3f, server %.3f", ml2[0].med, ml2[1].med), worst <= 0.15, true)
			row(fmt.Sprintf("%s: each meshlens proxy ≤ 1.5x HAProxy's CPU on the same path", s.Proto),
				fmt.Sprintf("%.3f vs HAProxy %.3f per hop: %s", worst, haHop, ratio(worst, haHop)), haHop > 0 && worst <= 1.5*haHop, true)
		} else {
			row(fmt.Sprintf("%s: CPU per proxy", s.Proto), "–", false, false)
		}
		m1, ok5 := a.stat("default", id, "max", pathML1, func(r Run) float64 { return r.Throughput })
		h1, ok6 := a.stat("default", id, "max", pathHA1, func(r Run) float64 { return r.Throughput })
		row(fmt.Sprintf("%s: max throughput through one hop ≥ 0.7x HAProxy's", s.Proto),
			fmt.Sprintf("%.0f vs %.0f rps: %s", m1.med, h1.med, ratio(m1.med, h1.med)), h1.med > 0 && m1.med >= 0.7*h1.med, ok5 && ok6)
	}
	var idle float64
	for n, v := range res.IdleRSSMB {
		if strings.HasPrefix(n, "sidecar-") {
			idle = max(idle, v)
		}
	}
	row("RSS of an idle sidecar ≤ 20 MB", fmt.Sprintf("%.1f MB (largest sidecar)", idle), idle <= 20, idle > 0)
	for _, proto := range []string{"http1", "h2c"} {
		ml, ha, ok := idleConnPair(res, proto)
		row(fmt.Sprintf("%s: memory per idle keep-alive connection ≤ 10 KB", proto),
			fmt.Sprintf("%.1f KB vs HAProxy %.1f KB: %s", ml.KBPerConn, ha.KBPerConn, ratio(ml.KBPerConn, ha.KBPerConn)), ml.KBPerConn <= 10, ok)
	}
	var loaded float64
	for _, r := range res.Runs {
		if r.Variant == "default" && r.Rate == 5000 && (r.Path == pathML1 || r.Path == pathML2) {
			for _, p := range r.Procs {
				loaded = max(loaded, p.RSSPeakMB)
			}
		}
	}
	row("RSS of a sidecar ≤ 60 MB under 5000 rps", fmt.Sprintf("%.1f MB (peak of any sidecar)", loaded), loaded <= 60, loaded > 0)
	var statsAllocs float64
	var nStats int
	for _, g := range res.GoBench {
		// Merge runs when stats are flushed, not per request.
		if strings.Contains(g.Package, "stats") && !strings.HasPrefix(g.Name, "BenchmarkMerge") {
			statsAllocs = max(statsAllocs, g.AllocsPerOp)
			nStats++
		}
	}
	row("the stats path allocates nothing per request", fmt.Sprintf("at most %.0f allocs/op over %d internal/stats request-path benchmarks", statsAllocs, nStats), statsAllocs == 0, nStats > 0)
	for _, x := range res.XDS {
		r := x.Result
		// The targets are the single server's; replicas are reported
		// in the table.
		if r == nil || r.Streams != 1000 || r.Replicas > 1 {
			continue
		}
		p99 := max(r.Route.P99, r.Endpoint.P99)
		row("1000 proxies converge on a change in < 1 s at p99", fmt.Sprintf("route %.0f ms, endpoint %.0f ms", r.Route.P99, r.Endpoint.P99), x.Error == "" && p99 < 1000, true)
		row("control plane < 500 MB RSS with 1000 proxies", fmt.Sprintf("%.0f MB peak", r.RSSPeakMB), r.RSSPeakMB < 500, true)
	}
	return b.String()
}

// updateMarkdown rewrites the generated sections of the BENCHMARKS.md at
// path, between `<!-- BEGIN generated: NAME -->` and `<!-- END generated:
// NAME -->`; the text around them is kept. A missing file starts from the
// skeleton.
//
// only, when not empty, names the sections to rewrite: a run of part of
// the suite leaves the others as the last full run wrote them.
func updateMarkdown(path string, res *Results, only ...string) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		b, err = []byte(skeleton), nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	doc := string(b)
	for name, body := range sections(res) {
		if len(only) > 0 && !slices.Contains(only, name) {
			continue
		}
		begin := "<!-- BEGIN generated: " + name + " -->"
		end := "<!-- END generated: " + name + " -->"
		i := strings.Index(doc, begin)
		j := strings.Index(doc, end)
		if i < 0 || j < i {
			continue
		}
		doc = doc[:i+len(begin)] + "\n" + strings.TrimLeft(body, "\n") + doc[j:]
	}
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

const skeleton = `# Benchmarks

Generated by ` + "`make bench`" + `; the sections between the generated markers are rewritten by each run.

## Machine
<!-- BEGIN generated: machine -->
<!-- END generated: machine -->

## Targets
<!-- BEGIN generated: targets -->
<!-- END generated: targets -->

## Latency at a fixed rate
![latency by percentile](bench/results/latency.png)
<!-- BEGIN generated: latency -->
<!-- END generated: latency -->

## Maximum throughput
<!-- BEGIN generated: throughput -->
<!-- END generated: throughput -->

## Cost per request
<!-- BEGIN generated: cost -->
<!-- END generated: cost -->

## Access log and stats
<!-- BEGIN generated: variants -->
<!-- END generated: variants -->

## Tracing
<!-- BEGIN generated: tracing -->
<!-- END generated: tracing -->

## The Go floor of an HTTP/1.1 hop
<!-- BEGIN generated: floor -->
<!-- END generated: floor -->

## Allocations on the request path
<!-- BEGIN generated: gobench -->
<!-- END generated: gobench -->

## Control plane at scale
<!-- BEGIN generated: xds -->
<!-- END generated: xds -->

## Profiles
<!-- BEGIN generated: profiles -->
<!-- END generated: profiles -->

## Notes from the run
<!-- BEGIN generated: notes -->
<!-- END generated: notes -->
`

// tracingTable is the cost of the tracing settings on HTTP/1.1 1 KB at
// 1000 rps: CPU per 1000 requests of all hops and p99, each against
// tracing off, with the default mesh (no tracing field) beside them when
// the run measured it.
func tracingTable(res *Results, a agg) string {
	var b strings.Builder
	const id, ln = "http1-1k", "1000rps"
	b.WriteString("| path | tracing | CPU-s per 1000 requests, all hops | vs off | p99 (ms) | vs off | p50 (ms) | runs |\n|---|---|---|---|---|---|---|---|\n")
	type row struct{ variant, label string }
	rows := []row{}
	for _, t := range tracingSettings {
		rows = append(rows, row{t.variant, t.label})
	}
	rows = append(rows, row{"default", "default mesh (no `tracing`: builtin, 1 %), measured in the main block"})
	any := false
	for _, p := range []string{pathML1, pathML2} {
		_, off, okOff := a.hopCPU(tracingSettings[0].variant, id, ln, p)
		off99, _ := a.stat(tracingSettings[0].variant, id, ln, p, func(r Run) float64 { return r.P99 })
		for _, r := range rows {
			_, cpu, ok := a.hopCPU(r.variant, id, ln, p)
			if !ok {
				continue
			}
			any = true
			p99, _ := a.stat(r.variant, id, ln, p, func(r Run) float64 { return r.P99 })
			p50, _ := a.stat(r.variant, id, ln, p, func(r Run) float64 { return r.P50 })
			cpuRatio, p99Ratio := "–", "–"
			if okOff {
				cpuRatio, p99Ratio = ratio(cpu.med, off.med), ratio(p99.med, off99.med)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %d |\n", pathLabel[p], r.label, cpu.fmt(3), cpuRatio, p99.fmt(3), p99Ratio, p50.fmt(3), len(a[key(r.variant, id, ln, p)]))
		}
	}
	if !any {
		return "No tracing variant was measured in this run.\n"
	}
	b.WriteString("\nHTTP/1.1 1 KB at 1000 rps; median (min–max) over repetitions, the settings interleaved within each repetition (the mesh's `spec.meshlens.tracing` re-applied and seen in every sidecar's config_dump before each). 1 % with the builtin provider is what a mesh without a `tracing` field gets (the default). The ratios are of medians, to tracing off on the same path. The builtin provider exports OTLP to the harness's control plane, whose trace store receives the spans (see the notes). CPU is the sidecars' only: the control plane's work of storing spans is not counted.\n")
	var foreign []float64
	for _, r := range res.Runs {
		if strings.HasPrefix(r.Variant, "tracing-") {
			foreign = append(foreign, r.ForeignCPU)
		}
	}
	fs := statOf(foreign)
	fmt.Fprintf(&b, "\nRun %s to %s, meshlens %s, %d repetitions of %.0f s, %d connections; processes outside the benchmark used %.2f cores during the median run (max %.2f).\n",
		res.Started.Format("2006-01-02 15:04"), res.Finished.Format("15:04 MST"), res.Machine.Commit, res.Reps, res.DurationS, res.Conns, fs.med, fs.hi)
	for _, n := range res.Notes {
		if strings.HasPrefix(n, "tracing ") {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// floorTable compares one meshlens hop with one HAProxy hop and the Go
// floor relay (the floor block's runs).
func floorTable(res *Results, a agg) string {
	const id, ln = "http1-1k", "max"
	ha, okHA := a.stat(floorVariant, id, ln, pathHA1, procCPU(false))
	haRPS, _ := a.stat(floorVariant, id, ln, pathHA1, func(r Run) float64 { return r.Throughput })
	var b strings.Builder
	b.WriteString("| path | rps | proxy CPU per request (µs) | its own code (user) | kernel | CPU vs HAProxy | rps vs HAProxy | application and load generator per request (µs) | proxy reads, writes per request |\n|---|---|---|---|---|---|---|---|---|\n")
	any := false
	for _, p := range []string{pathML1, pathHA1, pathRelay1} {
		cpu, ok := a.stat(floorVariant, id, ln, p, procCPU(false))
		if !ok {
			continue
		}
		any = true
		sys, _ := a.stat(floorVariant, id, ln, p, procCPU(true))
		user, _ := a.stat(floorVariant, id, ln, p, func(r Run) float64 { return procCPU(false)(r) - procCPU(true)(r) })
		rps, _ := a.stat(floorVariant, id, ln, p, func(r Run) float64 { return r.Throughput })
		ends, _ := a.stat(floorVariant, id, ln, p, func(r Run) float64 {
			var s float64
			for _, e := range r.Ends {
				s += e.CPUPer1000 * 1000
			}
			return s
		})
		io := "–"
		if reads, _ := a.stat(floorVariant, id, ln, p, func(r Run) float64 { return procReads(r) }); reads.med > 0 {
			writes, _ := a.stat(floorVariant, id, ln, p, func(r Run) float64 { return procWrites(r) })
			io = fmt.Sprintf("%.2f, %.2f", reads.med, writes.med)
		}
		cpuRatio, rpsRatio := "–", "–"
		if okHA {
			cpuRatio, rpsRatio = ratio(cpu.med, ha.med), ratio(rps.med, haRPS.med)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", pathLabel[p], rps.fmt(0), cpu.fmt(1), user.fmt(1), sys.fmt(1), cpuRatio, rpsRatio, ends.fmt(1), io)
	}
	if !any {
		return "The floor block was not run.\n"
	}
	fmt.Fprintf(&b, "\nHTTP/1.1 1 KB at the maximum rate (%d connections, closed loop), the three paths interleaved in each of %d repetitions; median (min–max). The Go relay (`bench/gorelay`, run as `meshbench relay` with `GOMAXPROCS=1`, as the sidecars run on one core) does the least a keep-alive hop does: it reads a request head, writes it upstream with an `X-Request-Id` field added, reads the response head and copies its Content-Length body back, one goroutine and one upstream connection per downstream connection on Go's netpoller. What it costs is what the Go runtime and the kernel set for a hop; what a meshlens hop costs over it is the proxy's own work. CPU from `/proc/<pid>/stat` (10 ms ticks), system calls from `/proc/<pid>/io` (HAProxy's `recv` and `send` are not counted there).\n", res.Conns, res.Reps)
	return b.String()
}

// procCPU is a run's CPU per request of its one proxy, in µs: all of it,
// or its kernel part.
func procCPU(kernel bool) func(Run) float64 {
	return func(r Run) float64 {
		if len(r.Procs) == 0 {
			return 0
		}
		if kernel {
			return r.Procs[0].SysPer1000 * 1000
		}
		return r.Procs[0].CPUPer1000 * 1000
	}
}

func procReads(r Run) float64 {
	if len(r.Procs) == 0 {
		return 0
	}
	return r.Procs[0].ReadsPerReq
}

func procWrites(r Run) float64 {
	if len(r.Procs) == 0 {
		return 0
	}
	return r.Procs[0].WritesPerReq
}

// joinMB renders sizes as "12 / 34 / 56".
func joinMB(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, " / ")
}

// idleConnPair is the meshlens and the HAProxy measurement of memory per
// idle connection for proto.
func idleConnPair(res *Results, proto string) (ml, ha IdleConns, ok bool) {
	var okML, okHA bool
	for _, r := range res.IdleConns {
		if r.Proto != proto {
			continue
		}
		if strings.HasPrefix(r.Proc, "haproxy") {
			ha, okHA = r, true
		} else {
			ml, okML = r, true
		}
	}
	return ml, ha, okML && okHA
}

// idleConnsTable renders the memory per idle keep-alive connection, one
// row per protocol, meshlens beside HAProxy.
func idleConnsTable(res *Results) string {
	if len(res.IdleConns) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n| idle keep-alive connections | meshlens: process, RSS before → after (MB) | KB per connection | HAProxy: process, RSS before → after (MB) | KB per connection | meshlens/HAProxy |\n|---|---|---|---|---|---|\n")
	for _, proto := range []string{"http1", "h2c"} {
		ml, ha, ok := idleConnPair(res, proto)
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "| %s, %d connections | %s, %.1f → %.1f | %.1f | %s, %.1f → %.1f | %.1f | %s |\n", proto, ml.Conns,
			ml.Proc, ml.RSSBeforeMB, ml.RSSAfterMB, ml.KBPerConn, ha.Proc, ha.RSSBeforeMB, ha.RSSAfterMB, ha.KBPerConn, ratio(ml.KBPerConn, ha.KBPerConn))
	}
	b.WriteString("\nEach connection made one request (1 KB response) and stays open; the figure is the process's RSS growth (`/proc/<pid>/status` VmRSS) with all of them open and idle, divided by their number. Each process is measured once, fresh: no load has gone through it before.\n")
	return b.String()
}

// splitTable puts a meshlens hop's CPU per request against HAProxy's,
// split into the proxy's own code (user time) and the kernel's work on
// its behalf (system time: the system calls and the network stack
// under them), one hop at 1000 rps and at the maximum rate. Where the
// hop costs more than HAProxy's, it says which side the difference is
// on. Empty when the runs carry no split (results of older builds).
func splitTable(a agg, scenarios []Scenario) string {
	part := func(sys bool) func(Run) float64 {
		return func(r Run) float64 {
			var n float64
			for _, pc := range r.Procs {
				if sys {
					n += pc.SysPer1000 * 1000
				} else {
					n += (pc.CPUPer1000 - pc.SysPer1000) * 1000
				}
			}
			return n
		}
	}
	var rows strings.Builder
	for _, s := range scenarios {
		for _, ln := range []string{"1000rps", "max"} {
			mu, ok1 := a.stat("default", s.ID, ln, pathML1, part(false))
			mk, ok2 := a.stat("default", s.ID, ln, pathML1, part(true))
			hu, ok3 := a.stat("default", s.ID, ln, pathHA1, part(false))
			hk, ok4 := a.stat("default", s.ID, ln, pathHA1, part(true))
			if !ok1 || !ok2 || !ok3 || !ok4 || mk.med == 0 || hk.med == 0 {
				continue
			}
			fmt.Fprintf(&rows, "| %s %s, %s | %s | %s | %s | %s | %s | %s |\n", s.Proto, s.Payload, ln,
				mu.fmt(1), mk.fmt(1), hu.fmt(1), hk.fmt(1), ratio(mu.med, hu.med), ratio(mk.med, hk.med))
		}
	}
	if rows.Len() == 0 {
		return ""
	}
	return "\nThe CPU per request of one hop split into the proxy's own code (user time) and the kernel's work for it (system time: its system calls and the network stack under them), from `/proc/<pid>/stat` (10 ms ticks; µs, median, min–max):\n\n" +
		"| scenario, load | meshlens user | meshlens kernel | HAProxy user | HAProxy kernel | user, meshlens/HAProxy | kernel, meshlens/HAProxy |\n|---|---|---|---|---|---|---|\n" +
		rows.String()
}
