package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/store"
)

// warningCache keeps the warnings of the latest store snapshot asked
// about, per mesh: reads between two writes translate a mesh once.
type warningCache struct {
	mu     sync.Mutex
	snap   *store.Snapshot
	byMesh map[string]map[v1alpha1.Key][]string
}

// warningsOf returns what the control plane keeps but cannot translate or
// enforce in the meshes of keys in snap, by resource (see xds.Warnings).
// The store's own snapshot is cached; others (a dry run's) are not.
func (s *Server) warningsOf(snap *store.Snapshot, keys []v1alpha1.Key, cache bool) map[v1alpha1.Key][]string {
	out := map[v1alpha1.Key][]string{}
	c := &s.warnings
	c.mu.Lock()
	defer c.mu.Unlock()
	if cache && c.snap != snap {
		c.snap, c.byMesh = snap, map[string]map[v1alpha1.Key][]string{}
	}
	done := map[string]bool{}
	for _, k := range keys {
		mesh := k.Mesh
		if k.Kind == v1alpha1.KindMesh {
			mesh = k.Name // a mesh's notes are on its resources
		}
		if done[mesh] {
			continue
		}
		done[mesh] = true
		w, ok := c.byMesh[mesh]
		if !cache || !ok {
			w = s.xds.Warnings(snap, mesh)
			if cache {
				c.byMesh[mesh] = w
			}
		}
		for k, ws := range w {
			out[k] = ws
		}
		if ws := s.envoySpanWarnings(snap, mesh); len(ws) > 0 {
			k := v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: mesh}
			out[k] = append(slices.Clip(out[k]), ws...) // the cached slice is not extended
		}
	}
	return out
}

// envoySpanWarnings warns, with tokens on, of the Envoy data planes
// connected to a mesh whose tracing is the builtin provider: Envoy's
// OpenTelemetry exporter sends no token, and the control plane refuses
// span exports without one, so their spans are never stored. meshlens
// sidecars send theirs with their xDS credentials. The warning depends on
// who is connected, so it is computed for each answer, not cached.
func (s *Server) envoySpanWarnings(l v1alpha1.Lookup, mesh string) []string {
	if s.cfg.Auth == nil || s.spanCollector == "" || s.xds == nil {
		return nil
	}
	m := l.Get(v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: mesh})
	if m == nil || m.MeshSpec == nil {
		return nil
	}
	if t := m.MeshSpec.Meshlens; t != nil && t.Tracing != nil && t.Tracing.Provider != "" && t.Tracing.Provider != v1alpha1.TracingBuiltin {
		return nil
	}
	var envoys []string
	for _, n := range s.xds.Nodes() {
		if n.Mesh != mesh {
			continue
		}
		for _, st := range n.Streams {
			if strings.EqualFold(st.UserAgent, "envoy") {
				envoys = append(envoys, n.ID)
				break
			}
		}
	}
	if len(envoys) == 0 {
		return nil
	}
	slices.Sort(envoys)
	shown := envoys[:min(len(envoys), 3)]
	more := ""
	if len(envoys) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(envoys)-len(shown))
	}
	return []string{fmt.Sprintf("spec.meshlens.tracing: %d Envoy data plane(s) connected (%s%s) export the builtin provider's spans without a token, "+
		"which the control plane refuses while tokens are on: their spans are not stored; give the mesh an otlp provider with a collector of its own",
		len(envoys), strings.Join(shown, ", "), more)}
}

// pushWait bounds how long an apply waits for the xDS server to push the
// state it made before computing its warnings.
const pushWait = 2 * time.Second

// streamsQuiet is how long the xDS streams must have been idle for an
// apply to consider its push delivered.
const streamsQuiet = 25 * time.Millisecond

// awaitPushed returns once the xDS server has handed the views built from
// snap, or from a later store snapshot, to its caches and its streams
// have gone quiet (every data plane got its response and ACKed it), or
// after pushWait, or at once when nothing feeds the xDS server. An apply
// computes its warnings after that: translating every node of the mesh
// for them is as much work as a push, and must not take the CPU the push
// that the apply's change is waiting for needs.
func (s *Server) awaitPushed(ctx context.Context, snap *store.Snapshot) {
	if !s.feeding.Load() {
		return
	}
	timeout := time.NewTimer(pushWait)
	defer timeout.Stop()
	for {
		l, later := s.xds.Pushed()
		if p, ok := l.(*store.Snapshot); ok && p.Revision() >= snap.Revision() {
			break
		}
		select {
		case <-later:
		case <-timeout.C:
			return
		case <-ctx.Done():
			return
		}
	}
	quiet := streamsQuiet
	if s.streamsQuiet > 0 {
		quiet = s.streamsQuiet
	}
	for {
		idle := s.xds.StreamsIdleFor()
		if idle >= quiet {
			return
		}
		wait := time.NewTimer(quiet - idle)
		select {
		case <-wait.C:
		case <-timeout.C:
			wait.Stop()
			return
		case <-ctx.Done():
			wait.Stop()
			return
		}
	}
}

// readWarnings are the warnings a read of resources answers with: none
// for meshes only that a mesh shares its trust domain with another (no
// translation note is about a mesh itself, so listing meshes translates
// nothing).
func (s *Server) readWarnings(snap *store.Snapshot, keys []v1alpha1.Key) []string {
	if len(keys) == 0 {
		return nil
	}
	if keys[0].Kind == v1alpha1.KindMesh {
		out := meshCaseWarnings(snap, keys)
		for _, k := range keys {
			for _, w := range s.envoySpanWarnings(snap, k.Name) {
				out = append(out, k.String()+": "+w)
			}
		}
		return out
	}
	return resourceWarnings(s.warningsOf(snap, keys, true), keys)
}

// meshCaseWarnings warns of meshes whose names differ only in case,
// stored before applies refused them (v1alpha1.CheckReferences): they
// share the mesh CA's trust domain.
func meshCaseWarnings(l v1alpha1.Lookup, keys []v1alpha1.Key) []string {
	meshes := l.List(v1alpha1.KindMesh, "", "")
	var out []string
	for _, k := range keys {
		for _, m := range meshes {
			if m.Name != k.Name && strings.EqualFold(m.Name, k.Name) {
				out = append(out, k.String()+": name: differs from mesh "+m.Name+" only in case; the two share the mesh CA's trust domain spiffe://"+
					strings.ToLower(k.Name)+", and a workload of one can prove an identity of the other: delete one and apply it under another name")
			}
		}
	}
	return out
}

// resourceWarnings renders the warnings of the given resources, each
// prefixed with its resource, in the keys' order.
func resourceWarnings(w map[v1alpha1.Key][]string, keys []v1alpha1.Key) []string {
	var out []string
	for _, k := range keys {
		for _, msg := range w[k] {
			out = append(out, k.String()+": "+msg)
		}
	}
	return out
}

// applyWarnings are the warnings an apply answers with: those of the
// applied resources, then those it caused on other resources (a backend
// of a node that now names a service without a listener, say), which
// were not there before.
func applyWarnings(before, after map[v1alpha1.Key][]string, applied []v1alpha1.Key) []string {
	out := resourceWarnings(after, applied)
	var others []v1alpha1.Key
	for k, ws := range after {
		if slices.Contains(applied, k) {
			continue
		}
		for _, msg := range ws {
			if !slices.Contains(before[k], msg) {
				others = append(others, k)
				break
			}
		}
	}
	slices.SortFunc(others, func(a, b v1alpha1.Key) int { return strings.Compare(a.String(), b.String()) })
	for _, k := range others {
		for _, msg := range after[k] {
			if !slices.Contains(before[k], msg) {
				out = append(out, k.String()+": "+msg)
			}
		}
	}
	return out
}

// setWarningHeaders adds one Warning header per warning, as Kubernetes
// answers with admission warnings, so that a client sees them on any
// answer, even one whose body is a bare resource.
func setWarningHeaders(w http.ResponseWriter, warnings []string) {
	for _, msg := range warnings {
		w.Header().Add("Warning", restv1.FormatWarning(msg))
	}
}
