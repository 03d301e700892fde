// Package registry keeps the instances of virtual nodes that registered
// themselves with the control plane: what AWS Cloud Map did for App Mesh.
//
// Registrations live in memory and expire unless renewed, so an instance
// that is killed without deregistering disappears after its TTL. They are
// deliberately not persisted: after a control-plane restart, instances
// re-register on their next renewal, and a registry that survived the
// instances it describes would send traffic to the dead.
//
// With the etcd store, Leased keeps registrations in etcd instead, each
// under a lease with the registration's TTL, so that every control-plane
// replica sees them and a registration outlives the replica it was made
// through but not its own TTL.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Health statuses, spelled as Cloud Map spells them.
const (
	Healthy   = "HEALTHY"
	Unhealthy = "UNHEALTHY"
)

// Limits and defaults for registrations.
const (
	DefaultTTL    = 30 * time.Second
	MinTTL        = 1 * time.Second
	MaxTTL        = 1 * time.Hour
	maxAttributes = 30
	maxAttrLen    = 1024
)

// ErrInvalid marks a registration that cannot be accepted; the message
// names the field.
var ErrInvalid = errors.New("invalid registration")

// ErrNotFound: no such instance.
var ErrNotFound = errors.New("instance not found")

// Instance is one registered instance of a virtual node.
type Instance struct {
	Mesh          string            `json:"mesh"`
	VirtualNode   string            `json:"virtualNode"`
	ID            string            `json:"id"`
	Address       string            `json:"address"`
	Port          int               `json:"port"`
	HealthStatus  string            `json:"healthStatus"`
	NamespaceName string            `json:"namespaceName,omitempty"`
	ServiceName   string            `json:"serviceName,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
	TTLSeconds    int               `json:"ttlSeconds"`
	RegisteredAt  time.Time         `json:"registeredAt"`
	RenewedAt     time.Time         `json:"renewedAt"`
	ExpiresAt     time.Time         `json:"expiresAt"`

	// leased: mirrored from etcd, where the instance's lease, not the
	// local clock, decides when it ends (see Leased).
	leased bool
}

// expired reports whether the instance's TTL has passed at now.
func (in *Instance) expired(now time.Time) bool {
	return !in.leased && !now.Before(in.ExpiresAt)
}

// Validate checks the fields a caller supplies and fills defaults.
func (in *Instance) Validate() error {
	bad := func(field, msg string) error { return fmt.Errorf("%w: %s: %s", ErrInvalid, field, msg) }
	if in.Mesh == "" {
		return bad("mesh", "is required")
	}
	if in.VirtualNode == "" {
		return bad("virtualNode", "is required")
	}
	if in.ID == "" || len(in.ID) > 255 {
		return bad("id", "must be 1 to 255 characters")
	}
	if _, err := netip.ParseAddr(in.Address); err != nil {
		return bad("address", "must be an IPv4 or IPv6 address")
	}
	if in.Port < 1 || in.Port > 65535 {
		return bad("port", "must be between 1 and 65535")
	}
	switch in.HealthStatus {
	case "":
		in.HealthStatus = Healthy
	case Healthy, Unhealthy:
	default:
		return bad("healthStatus", "must be one of HEALTHY, UNHEALTHY")
	}
	if len(in.Attributes) > maxAttributes {
		return bad("attributes", fmt.Sprintf("must have at most %d entries", maxAttributes))
	}
	for k, v := range in.Attributes {
		if k == "" || len(k) > maxAttrLen || len(v) > maxAttrLen {
			return bad("attributes", fmt.Sprintf("keys must be 1 to %d characters and values at most %d", maxAttrLen, maxAttrLen))
		}
	}
	if v, ok := in.Attributes[AttrIPv4]; ok {
		if a, err := netip.ParseAddr(v); err != nil || !a.Is4() {
			return bad("attributes."+AttrIPv4, "must be an IPv4 address")
		}
	}
	if v, ok := in.Attributes[AttrIPv6]; ok {
		if a, err := netip.ParseAddr(v); err != nil || !a.Is6() || a.Is4In6() {
			return bad("attributes."+AttrIPv6, "must be an IPv6 address")
		}
	}
	switch {
	case in.TTLSeconds == 0:
		in.TTLSeconds = int(DefaultTTL / time.Second)
	case time.Duration(in.TTLSeconds)*time.Second < MinTTL || time.Duration(in.TTLSeconds)*time.Second > MaxTTL:
		return bad("ttlSeconds", fmt.Sprintf("must be between %d and %d", int(MinTTL/time.Second), int(MaxTTL/time.Second)))
	}
	return nil
}

type key struct{ mesh, node, id string }

// Cloud Map's attributes for an instance's addresses. An instance whose
// Address is of one family may carry its address of the other family in
// one of these, so that an IP preference can pick it.
const (
	AttrIPv4 = "AWS_INSTANCE_IPV4"
	AttrIPv6 = "AWS_INSTANCE_IPV6"
)

// Registry holds registrations. It is safe for concurrent use.
type Registry struct {
	now func() time.Time

	mu sync.Mutex
	// instances are never modified once stored (a renewal stores a new
	// value), so that views can share them.
	instances map[key]*Instance
	version   uint64
	changed   chan struct{} // closed and replaced on every change
	view      *View         // the last view, reused while it is current
}

// New returns an empty registry. now may be nil for time.Now.
func New(now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return &Registry{now: now, instances: map[key]*Instance{}, changed: make(chan struct{})}
}

// Register creates or renews an instance. A renewal that changes nothing
// but the expiry does not count as a change.
func (r *Registry) Register(in Instance) (Instance, error) {
	if err := in.Validate(); err != nil {
		return Instance{}, err
	}
	now := r.now().UTC()
	in.RenewedAt = now
	in.ExpiresAt = now.Add(time.Duration(in.TTLSeconds) * time.Second)
	k := key{in.Mesh, in.VirtualNode, in.ID}

	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.instances[k]
	if ok {
		in.RegisteredAt = old.RegisteredAt
	} else {
		in.RegisteredAt = now
	}
	stored := in
	stored.Attributes = cloneMap(in.Attributes)
	r.instances[k] = &stored
	if !ok || !sameEndpoint(old, &stored) {
		r.bumpLocked()
	}
	return copyInstance(&stored), nil
}

// Deregister removes an instance.
func (r *Registry) Deregister(mesh, node, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := key{mesh, node, id}
	if _, ok := r.instances[k]; !ok {
		return fmt.Errorf("instance %s of %s/%s: %w", id, mesh, node, ErrNotFound)
	}
	delete(r.instances, k)
	r.bumpLocked()
	return nil
}

// List returns the live instances registered for a virtual node (every
// node of the mesh when node is empty; every mesh when mesh is empty),
// sorted by mesh, node and id.
func (r *Registry) List(mesh, node string) []Instance {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Instance
	for k, in := range r.instances {
		if (mesh != "" && k.mesh != mesh) || (node != "" && k.node != node) || in.expired(now) {
			continue
		}
		out = append(out, copyInstance(in))
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Mesh != b.Mesh {
			return a.Mesh < b.Mesh
		}
		if a.VirtualNode != b.VirtualNode {
			return a.VirtualNode < b.VirtualNode
		}
		return a.ID < b.ID
	})
	return out
}

// Select returns the live instances registered under namespace and service
// that carry every given attribute: Cloud Map's DiscoverInstances.
func (r *Registry) Select(namespace, service string, attrs map[string]string) []Instance {
	var out []Instance
	for _, in := range r.View().Service(namespace, service) {
		match := true
		for k, v := range attrs {
			if bv, ok := in.Attributes[k]; !ok || bv != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, copyInstance(in))
		}
	}
	return out
}

// View is an immutable picture of the live instances at one moment,
// indexed by Cloud Map namespace and service and by virtual node, so that
// selecting one node's instances costs that node's instances, not the
// registry's. Its instances are shared and must not be modified.
type View struct {
	version   uint64
	byService map[[2]string][]*Instance
	byNode    map[[2]string][]*Instance
	// until is when the first instance in the view expires: the view is
	// reused until then, or until the registry changes.
	until time.Time
}

// View returns the live instances now. Views are cached: two calls with
// no change in between return the same value.
func (r *Registry) View() *View {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if v := r.view; v != nil && v.version == r.version && now.Before(v.until) {
		return v
	}
	v := &View{version: r.version, byService: map[[2]string][]*Instance{}, byNode: map[[2]string][]*Instance{}}
	for k, in := range r.instances {
		if in.expired(now) {
			continue
		}
		if !in.leased && (v.until.IsZero() || in.ExpiresAt.Before(v.until)) {
			v.until = in.ExpiresAt
		}
		nk := [2]string{k.mesh, k.node}
		v.byNode[nk] = append(v.byNode[nk], in)
		sk := [2]string{in.NamespaceName, in.ServiceName}
		v.byService[sk] = append(v.byService[sk], in)
	}
	for _, b := range v.byNode {
		sortInstances(b)
	}
	for _, b := range v.byService {
		sortInstances(b)
	}
	if v.until.IsZero() {
		v.until = now.Add(MaxTTL)
	}
	r.view = v
	return v
}

// Version is the registry version the view was taken at.
func (v *View) Version() uint64 { return v.version }

// Len is the number of live instances in the view.
func (v *View) Len() int {
	n := 0
	for _, b := range v.byNode {
		n += len(b)
	}
	return n
}

// Service returns the live instances registered under a Cloud Map
// namespace and service, sorted by mesh, node and id.
func (v *View) Service(namespace, service string) []*Instance {
	return v.byService[[2]string{namespace, service}]
}

// Node returns the live instances registered for a virtual node, sorted by
// id.
func (v *View) Node(mesh, node string) []*Instance {
	return v.byNode[[2]string{mesh, node}]
}

func sortInstances(b []*Instance) {
	sort.Slice(b, func(i, j int) bool {
		x, y := b[i], b[j]
		if x.Mesh != y.Mesh {
			return x.Mesh < y.Mesh
		}
		if x.VirtualNode != y.VirtualNode {
			return x.VirtualNode < y.VirtualNode
		}
		return x.ID < y.ID
	})
}

// Version grows with every change to the set of live instances.
func (r *Registry) Version() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.version
}

// Changed returns a channel that is closed at the next change.
func (r *Registry) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Run removes expired instances until ctx ends, checking every interval.
func (r *Registry) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Expire()
		}
	}
}

// Expire removes instances whose TTL has passed and reports how many.
func (r *Registry) Expire() int {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k, in := range r.instances {
		if in.expired(now) {
			delete(r.instances, k)
			n++
		}
	}
	if n > 0 {
		r.bumpLocked()
	}
	return n
}

func (r *Registry) bumpLocked() {
	r.version++
	close(r.changed)
	r.changed = make(chan struct{})
}

func sameEndpoint(a, b *Instance) bool {
	if a.Address != b.Address || a.Port != b.Port || a.HealthStatus != b.HealthStatus ||
		a.NamespaceName != b.NamespaceName || a.ServiceName != b.ServiceName || len(a.Attributes) != len(b.Attributes) {
		return false
	}
	for k, v := range a.Attributes {
		if bv, ok := b.Attributes[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func copyInstance(in *Instance) Instance {
	out := *in
	out.leased = false
	out.Attributes = cloneMap(in.Attributes)
	return out
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
