package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"weak"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// hasher encodes each resource once per object: it marshals it, keeps
// the bytes with their content hash, and hands out an encoded resource
// that go-control-plane copies into every response. Views of one input
// share their objects (clusters, load assignments, virtual hosts), so a
// resource that reaches thousands of streams is marshalled once, not once
// per stream and response.
//
// It remembers an object by a weak pointer and forgets it when the object
// is collected: the listeners and routes of a view built for one data
// plane die with that view once the data plane disconnects, and a hasher
// holding them would keep every view ever built from the input alive
// until the next input change.
type hasher struct {
	mu sync.Mutex
	m  map[any]*encoded // weak.Pointer[T] of a resource -> its encoding
	// marshals counts the resources marshalled, for tests.
	marshals atomic.Int64
}

func newHasher() *hasher { return &hasher{m: map[any]*encoded{}} }

// encode returns m's encoding, marshalling m only the first time it is
// asked for that object.
func (h *hasher) encode(m proto.Message) *encoded {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return encodeWeak(h, r, r.GetName())
	case *routev3.RouteConfiguration:
		return encodeWeak(h, r, r.GetName())
	case *routev3.VirtualHost:
		return encodeWeak(h, r, r.GetName())
	case *clusterv3.Cluster:
		return encodeWeak(h, r, r.GetName())
	case *endpointv3.ClusterLoadAssignment:
		return encodeWeak(h, r, r.GetClusterName())
	}
	return h.encodeNow(m, cache.GetResourceName(m))
}

// hash returns the content hash of m.
func (h *hasher) hash(m proto.Message) string { return h.encode(m).hash }

// encodeWeak returns the encoding of p, remembered under a weak pointer
// until p is collected.
func encodeWeak[T any, P interface {
	*T
	proto.Message
}](h *hasher, p P, name string) *encoded {
	k := weak.Make((*T)(p))
	h.mu.Lock()
	e, ok := h.m[k]
	h.mu.Unlock()
	if ok {
		return e
	}
	e = h.encodeNow(p, name)
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev, had := h.m[k]; had {
		return prev
	}
	h.m[k] = e
	runtime.AddCleanup((*T)(p), h.forget, any(k))
	return e
}

func (h *hasher) encodeNow(m proto.Message, name string) *encoded {
	h.marshals.Add(1)
	var e *encoded
	if rc, ok := m.(*routev3.RouteConfiguration); ok && len(rc.VirtualHosts) > 1 {
		e = h.encodeRoutes(rc)
	} else {
		e = newEncoded(m, name)
	}
	if l, ok := m.(*listenerv3.Listener); ok {
		e.routes = routeNames(l)
	}
	return e
}

// encodeRoutes encodes a route configuration out of the encodings of its
// virtual hosts, which views share: a service's virtual host is in the
// route configuration of every data plane that calls it, and is marshalled
// once, not once per data plane. The bytes are those of the deterministic
// marshalling of rc (TestEncodeRoutesIsMarshal): protobuf writes fields in
// the order of their numbers, and virtual_hosts (2) comes right after name
// (1).
func (h *hasher) encodeRoutes(rc *routev3.RouteConfiguration) *encoded {
	opts := proto.MarshalOptions{Deterministic: true}
	rest := &routev3.RouteConfiguration{}
	rm := rest.ProtoReflect()
	rc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if n := fd.Number(); n != fieldName && n != fieldVirtualHosts {
			rm.Set(fd, v)
		}
		return true
	})
	vhs := make([][]byte, len(rc.VirtualHosts))
	size := opts.Size(rest)
	if rc.Name != "" {
		size += protowire.SizeTag(fieldName) + protowire.SizeBytes(len(rc.Name))
	}
	for i, vh := range rc.VirtualHosts {
		vhs[i] = h.encode(vh).bytes()
		size += protowire.SizeTag(fieldVirtualHosts) + protowire.SizeBytes(len(vhs[i]))
	}
	b := make([]byte, 0, size)
	if rc.Name != "" {
		b = protowire.AppendTag(b, fieldName, protowire.BytesType)
		b = protowire.AppendString(b, rc.Name)
	}
	for _, vh := range vhs {
		b = protowire.AppendTag(b, fieldVirtualHosts, protowire.BytesType)
		b = protowire.AppendBytes(b, vh)
	}
	b, err := opts.MarshalAppend(b, rest)
	if err != nil {
		return newEncoded(rc, rc.Name)
	}
	return encodedBytes(b, rc.Name)
}

// The field numbers of a route configuration's name and virtual hosts.
var (
	fieldName         = routeConfigField("name")
	fieldVirtualHosts = routeConfigField("virtual_hosts")
)

func routeConfigField(name protoreflect.Name) protowire.Number {
	return (&routev3.RouteConfiguration{}).ProtoReflect().Descriptor().Fields().ByName(name).Number()
}

// forget drops the encoding of an object that was collected.
func (h *hasher) forget(k any) {
	h.mu.Lock()
	delete(h.m, k)
	h.mu.Unlock()
}

// len reports how many objects the hasher remembers.
func (h *hasher) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// contentHash hashes the deterministic encoding of m.
func contentHash(m proto.Message) string { return newEncoded(m, "").hash }

// typeVersions are a snapshot's per-type versions, each a hash of the
// names and contents of that type's resources: a type whose resources did
// not change keeps its version, so go-control-plane does not resend it.
type typeVersions struct {
	Listeners, Routes, Clusters, Endpoints, Secrets string
}

// byType returns v's resources keyed by type URL.
func (v *View) byType() map[resource.Type][]types.Resource {
	out := map[resource.Type][]types.Resource{
		resource.ListenerType: make([]types.Resource, 0, len(v.Listeners)),
		resource.RouteType:    make([]types.Resource, 0, len(v.Routes)),
		resource.ClusterType:  make([]types.Resource, 0, len(v.Clusters)),
		resource.EndpointType: make([]types.Resource, 0, len(v.Endpoints)),
		resource.SecretType:   make([]types.Resource, 0, len(v.Secrets)),
	}
	for _, r := range v.Secrets {
		out[resource.SecretType] = append(out[resource.SecretType], r)
	}
	for _, r := range v.Listeners {
		out[resource.ListenerType] = append(out[resource.ListenerType], r)
	}
	for _, r := range v.Routes {
		out[resource.RouteType] = append(out[resource.RouteType], r)
	}
	for _, r := range v.Clusters {
		out[resource.ClusterType] = append(out[resource.ClusterType], r)
	}
	for _, r := range v.Endpoints {
		out[resource.EndpointType] = append(out[resource.EndpointType], r)
	}
	return out
}

// versionOf hashes the names and content hashes of one type's encoded
// resources, which arrive sorted by name.
func versionOf(rs []types.Resource) string {
	d := sha256.New()
	for _, r := range rs {
		e := r.(*encoded)
		d.Write([]byte(e.name))
		d.Write([]byte{0})
		d.Write([]byte(e.hash))
		d.Write([]byte{0})
	}
	return hex.EncodeToString(d.Sum(nil)[:12])
}

// encode marshals every resource of v that h has not marshalled yet. The
// server calls it on the goroutines that build views, so that handing the
// views to the caches afterwards marshals nothing.
func (v *View) encode(h *hasher) {
	for _, r := range v.Listeners {
		h.encode(r)
	}
	for _, r := range v.Routes {
		h.encode(r)
	}
	for _, r := range v.Clusters {
		h.encode(r)
	}
	for _, r := range v.Endpoints {
		h.encode(r)
	}
}

// snapshot turns a view into a go-control-plane snapshot of encoded
// resources with per-type content versions, and checks that it is
// consistent: every load assignment belongs to a cluster and every route
// configuration to a listener.
func (v *View) snapshot(h *hasher) (*cache.Snapshot, typeVersions, error) {
	snap := &cache.Snapshot{}
	snap.Resources[types.Listener] = v.enc.listeners.resources(h, v.Listeners)
	snap.Resources[types.Route] = v.enc.routes.resources(h, v.Routes)
	snap.Resources[types.Cluster] = v.enc.clusters.resources(h, v.Clusters)
	snap.Resources[types.Endpoint] = v.enc.endpoints.resources(h, v.Endpoints)
	snap.Resources[types.Secret] = v.enc.secrets.resources(h, v.Secrets)
	tv := typeVersions{
		Listeners: snap.Resources[types.Listener].Version,
		Routes:    snap.Resources[types.Route].Version,
		Clusters:  snap.Resources[types.Cluster].Version,
		Endpoints: snap.Resources[types.Endpoint].Version,
		Secrets:   snap.Resources[types.Secret].Version,
	}
	if err := v.consistent(h); err != nil {
		return nil, tv, fmt.Errorf("inconsistent snapshot: %w", err)
	}
	return snap, tv, nil
}

// viewEncodings are a view's resources as its last snapshot encoded them,
// per type. A view that shares a type's resources with the view it was
// made from (withEndpoints shares all but the load assignments) starts
// with that view's encodings, so its snapshot encodes and hashes only the
// types that changed.
type viewEncodings struct {
	listeners typeEncoding[*listenerv3.Listener]
	routes    typeEncoding[*routev3.RouteConfiguration]
	clusters  typeEncoding[*clusterv3.Cluster]
	endpoints typeEncoding[*endpointv3.ClusterLoadAssignment]
	secrets   typeEncoding[*tlsv3.Secret]
}

// typeEncoding is one type's encoded resources and the objects they
// encode.
type typeEncoding[T interface {
	comparable
	proto.Message
}] struct {
	from []T
	res  cache.Resources
	done bool
}

// resources returns rs (sorted by name) encoded, with their version:
// those already held when rs are the same objects.
func (e *typeEncoding[T]) resources(h *hasher, rs []T) cache.Resources {
	if e.done && slices.Equal(e.from, rs) {
		return e.res
	}
	enc := make([]types.Resource, len(rs))
	for i, r := range rs {
		enc[i] = h.encode(r)
	}
	*e = typeEncoding[T]{from: rs, res: cache.NewResources(versionOf(enc), enc), done: true}
	return e.res
}

// consistent checks what go-control-plane's Snapshot.Consistent checks,
// and also follows api_listeners, which it does not look into (so it
// rejects every proxyless view that uses RDS): the load assignments are
// exactly those of the EDS clusters, and the route configurations exactly
// those the listeners name.
func (v *View) consistent(h *hasher) error {
	eds := map[string]bool{}
	for _, c := range v.Clusters {
		if c.GetType() == clusterv3.Cluster_EDS {
			name := c.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = c.Name
			}
			eds[name] = true
		}
	}
	if len(eds) != len(v.Endpoints) {
		return fmt.Errorf("%d EDS clusters but %d load assignments", len(eds), len(v.Endpoints))
	}
	for _, cla := range v.Endpoints {
		if !eds[cla.ClusterName] {
			return fmt.Errorf("load assignment %s belongs to no EDS cluster", cla.ClusterName)
		}
	}
	rds := map[string]bool{}
	for _, l := range v.Listeners {
		for _, name := range h.encode(l).routes {
			rds[name] = true
		}
	}
	if len(rds) != len(v.Routes) {
		return fmt.Errorf("listeners name %d route configurations but there are %d", len(rds), len(v.Routes))
	}
	for _, rc := range v.Routes {
		if !rds[rc.Name] {
			return fmt.Errorf("route configuration %s is named by no listener", rc.Name)
		}
	}
	return nil
}

// routeNames lists the RDS route configurations a listener names.
func routeNames(l *listenerv3.Listener) []string {
	var out []string
	add := func(a *anypb.Any) {
		hcm := &hcmv3.HttpConnectionManager{}
		if a == nil || !a.MessageIs(hcm) || a.UnmarshalTo(hcm) != nil {
			return
		}
		if n := hcm.GetRds().GetRouteConfigName(); n != "" {
			out = append(out, n)
		}
	}
	chains := slices.Clone(l.FilterChains)
	if l.DefaultFilterChain != nil {
		chains = append(chains, l.DefaultFilterChain)
	}
	for _, c := range chains {
		for _, f := range c.Filters {
			add(f.GetTypedConfig())
		}
	}
	add(l.GetApiListener().GetApiListener())
	return out
}
