package store

import (
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct{ ms atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ms.Store(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// openAt opens the store at path with quiet logging and clock (may be nil).
func openAt(t testing.TB, path string, clock *fakeClock) *Bolt {
	t.Helper()
	opts := Options{Logger: quietLog, LockTimeout: time.Second}
	if clock != nil {
		opts.Now = clock.Now
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// openTemp opens a new store in a fresh temp dir, closed at cleanup.
func openTemp(t testing.TB, clock *fakeClock) (*Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meshlens.db")
	s := openAt(t, path, clock)
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func mesh(name string) *v1alpha1.Resource {
	return &v1alpha1.Resource{
		Kind: v1alpha1.KindMesh, Name: name,
		MeshSpec: &v1alpha1.MeshSpec{EgressFilter: &v1alpha1.EgressFilter{Type: "DROP_ALL"}},
	}
}

func vnode(meshName, name string, port int) *v1alpha1.Resource {
	return &v1alpha1.Resource{
		Kind: v1alpha1.KindVirtualNode, Mesh: meshName, Name: name,
		VirtualNodeSpec: &v1alpha1.VirtualNodeSpec{
			Listeners: []v1alpha1.Listener{{PortMapping: &v1alpha1.PortMapping{Port: port, Protocol: "http"}}},
			ServiceDiscovery: &v1alpha1.ServiceDiscovery{
				DNS: &v1alpha1.DNSServiceDiscovery{Hostname: name + "." + meshName + ".local"},
			},
		},
	}
}

func withVersion(r *v1alpha1.Resource, v int64) *v1alpha1.Resource {
	r.Metadata = &v1alpha1.Metadata{Version: v}
	return r
}

func vnKey(meshName, name string) v1alpha1.Key {
	return v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: meshName, Name: name}
}

// dump renders a snapshot as JSON, for comparing whole states.
func dump(t testing.TB, s *Snapshot) string {
	t.Helper()
	b, err := json.Marshal(struct {
		Revision  uint64
		Resources []*v1alpha1.Resource
	}{s.Revision(), s.All()})
	if err != nil {
		t.Fatalf("marshal snapshot: %v", err)
	}
	return string(b)
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
