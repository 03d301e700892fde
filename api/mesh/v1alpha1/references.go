package v1alpha1

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors for the rules that span resources, for errors.Is. The typed
// errors InUseError and ReferenceError carry the details.
var (
	// ErrResourceInUse: a resource cannot be deleted while others refer to
	// it (App Mesh's ResourceInUseException).
	ErrResourceInUse = errors.New("resource in use")
	// ErrReferenceNotFound: a resource names another that does not exist.
	ErrReferenceNotFound = errors.New("referenced resource not found")
	// ErrInvalidReference: the referenced resource exists but does not fit,
	// such as a route whose protocol no listener of its router serves.
	ErrInvalidReference = errors.New("invalid reference")
)

// maxInUseListed bounds how many referrers an InUseError message names.
const maxInUseListed = 5

// InUseError says that Key cannot be deleted because the resources By
// refer to it.
type InUseError struct {
	Key Key
	By  []Key
}

func (e *InUseError) Error() string {
	var b strings.Builder
	b.WriteString(e.Key.String())
	b.WriteString(" is in use by ")
	for i, k := range e.By {
		if i == maxInUseListed {
			fmt.Fprintf(&b, " and %d more", len(e.By)-maxInUseListed)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k.String())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrResourceInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrResourceInUse }

// ReferenceError is a reference from Resource, at the field Path, that
// does not hold: the resource it names (Target) does not exist (NotFound)
// or does not fit.
type ReferenceError struct {
	Resource Key
	Path     string
	Message  string
	Target   Key
	NotFound bool
}

func (e *ReferenceError) Error() string {
	return e.Resource.String() + ": " + e.Path + ": " + e.Message
}

// Is maps the error to ErrReferenceNotFound or ErrInvalidReference.
func (e *ReferenceError) Is(target error) bool {
	if e.NotFound {
		return target == ErrReferenceNotFound
	}
	return target == ErrInvalidReference
}

// CheckReferences enforces the rules that span resources on next, the
// state as it would be once a batch that changed the keys changed is
// committed. A changed key absent from next is a delete, refused while
// anything in next refers to it. Every resource of every mesh the batch
// touched is then checked, not only the changed ones, so that an update
// that breaks an unchanged resource (a router losing the listener a route
// uses) is refused too. It returns the first problem in key order.
func CheckReferences(next Lookup, changed []Key) error {
	keys := slices.Clone(changed)
	slices.SortFunc(keys, compareKeys)
	meshes := map[string]bool{}
	for _, k := range keys {
		if k.Kind == KindMesh {
			meshes[k.Name] = true
		} else {
			meshes[k.Mesh] = true
		}
		if next.Get(k) != nil {
			if k.Kind == KindMesh {
				if err := checkMeshNameCase(next, k); err != nil {
					return err
				}
			}
			continue
		}
		if by := referrers(next, k, false); len(by) > 0 {
			return &InUseError{Key: k, By: by}
		}
	}
	var all []*Resource
	for mesh := range meshes {
		for _, kind := range Kinds {
			if kind == KindMesh {
				if r := next.Get(Key{Kind: KindMesh, Name: mesh}); r != nil {
					all = append(all, r)
				}
				continue
			}
			for _, r := range next.List(kind, mesh, "") {
				if r.Mesh == mesh {
					all = append(all, r)
				}
			}
		}
	}
	slices.SortFunc(all, func(a, b *Resource) int { return compareKeys(a.Key(), b.Key()) })
	for _, r := range all {
		if err := checkResource(next, r); err != nil {
			return err
		}
	}
	return nil
}

// Referrers returns the resources in l that refer to k, sorted by key:
// everything in a mesh for a Mesh; the routes that target a virtual node
// and the virtual services it provides; the routes of a virtual router and
// the virtual services it provides; the gateway routes that target a
// virtual service and the virtual nodes that name it as a backend; the
// gateway routes of a virtual gateway. Backends are listed for
// information only: App Mesh lets a backend name a virtual service that
// does not exist (yet), so they never keep a virtual service from being
// deleted.
func Referrers(l Lookup, k Key) []Key {
	return referrers(l, k, true)
}

func referrers(l Lookup, k Key, withBackends bool) []Key {
	if k.Name == "" {
		return nil
	}
	var out []Key
	add := func(r *Resource) { out = append(out, r.Key()) }
	mesh := k.Mesh
	switch k.Kind {
	case KindMesh:
		for _, kind := range Kinds[1:] {
			for _, r := range l.List(kind, k.Name, "") {
				if r.Mesh == k.Name {
					add(r)
				}
			}
		}
	case KindVirtualNode:
		for _, r := range inMesh(l, KindRoute, mesh) {
			if slices.ContainsFunc(routeTargets(r.RouteSpec), func(t WeightedTarget) bool { return t.VirtualNode == k.Name }) {
				add(r)
			}
		}
		for _, r := range inMesh(l, KindVirtualService, mesh) {
			if p := provider(r); p != nil && p.VirtualNode != nil && p.VirtualNode.VirtualNodeName == k.Name {
				add(r)
			}
		}
	case KindVirtualRouter:
		for _, r := range inMesh(l, KindRoute, mesh) {
			if r.VirtualRouter == k.Name {
				add(r)
			}
		}
		for _, r := range inMesh(l, KindVirtualService, mesh) {
			if p := provider(r); p != nil && p.VirtualRouter != nil && p.VirtualRouter.VirtualRouterName == k.Name {
				add(r)
			}
		}
	case KindVirtualService:
		for _, r := range inMesh(l, KindGatewayRoute, mesh) {
			if t := gatewayTarget(r.GatewayRouteSpec); t != nil && t.VirtualService != nil && t.VirtualService.VirtualServiceName == k.Name {
				add(r)
			}
		}
		if withBackends {
			for _, r := range inMesh(l, KindVirtualNode, mesh) {
				if r.VirtualNodeSpec == nil {
					continue
				}
				for _, b := range r.VirtualNodeSpec.Backends {
					if b.VirtualService != nil && b.VirtualService.VirtualServiceName == k.Name {
						add(r)
						break
					}
				}
			}
		}
	case KindVirtualGateway:
		for _, r := range inMesh(l, KindGatewayRoute, mesh) {
			if r.VirtualGateway == k.Name {
				add(r)
			}
		}
	}
	slices.SortFunc(out, compareKeys)
	return slices.Compact(out)
}

// inMesh lists the resources of kind in mesh; an empty mesh matches none
// (Lookup.List would take it as every mesh).
func inMesh(l Lookup, kind Kind, mesh string) []*Resource {
	if mesh == "" {
		return nil
	}
	rs := l.List(kind, mesh, "")
	out := rs[:0:0]
	for _, r := range rs {
		if r.Mesh == mesh {
			out = append(out, r)
		}
	}
	return out
}

// compareKeys orders keys by kind (in Kinds order), mesh, parent and name,
// the order the store lists them in.
func compareKeys(a, b Key) int {
	if a.Kind != b.Kind {
		return kindIndex(a.Kind) - kindIndex(b.Kind)
	}
	if c := strings.Compare(a.Mesh, b.Mesh); c != 0 {
		return c
	}
	if c := strings.Compare(a.Parent, b.Parent); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

func kindIndex(k Kind) int {
	if i := slices.Index(Kinds, k); i >= 0 {
		return i
	}
	return len(Kinds)
}

// ---- the checks of one resource ----

// refCheck collects the first broken reference of one resource.
type refCheck struct {
	l   Lookup
	r   *Resource
	err error
}

func (c *refCheck) fail(path string, target Key, notFound bool, format string, args ...any) {
	if c.err == nil {
		c.err = &ReferenceError{Resource: c.r.Key(), Path: path, Message: fmt.Sprintf(format, args...), Target: target, NotFound: notFound}
	}
}

// get returns the resource k, or records that it is missing.
func (c *refCheck) get(path string, k Key) *Resource {
	r := c.l.Get(k)
	if r == nil {
		c.fail(path, k, true, "%s not found", k)
	}
	return r
}

// checkMeshNameCase refuses a mesh whose name differs from another's only
// in case: the mesh CA's SPIFFE trust domain is the mesh name in lower
// case (trust domains are lower case), so the two meshes would share one,
// and a workload of one could prove an identity of the other.
func checkMeshNameCase(l Lookup, k Key) error {
	for _, m := range l.List(KindMesh, "", "") {
		if m.Name != k.Name && strings.EqualFold(m.Name, k.Name) {
			return &ReferenceError{Resource: k, Path: "name", Target: m.Key(),
				Message: fmt.Sprintf("differs from mesh %s only in case; the two would share the mesh CA's trust domain spiffe://%s, and a workload of one could prove an identity of the other: choose another name", m.Name, strings.ToLower(k.Name))}
		}
	}
	return nil
}

func checkResource(l Lookup, r *Resource) error {
	c := &refCheck{l: l, r: r}
	if r.Kind != KindMesh && c.get("mesh", Key{Kind: KindMesh, Name: r.Mesh}) == nil {
		return c.err
	}
	switch r.Kind {
	case KindRoute:
		c.route()
	case KindVirtualService:
		c.virtualService()
	case KindGatewayRoute:
		c.gatewayRoute()
	}
	return c.err
}

// listener is one port and protocol of a router, node or gateway.
type listener struct {
	port     int
	protocol string
}

func routerListeners(r *Resource) []listener {
	var out []listener
	if r.VirtualRouterSpec != nil {
		for _, l := range r.VirtualRouterSpec.Listeners {
			if l.PortMapping != nil {
				out = append(out, listener{l.PortMapping.Port, l.PortMapping.Protocol})
			}
		}
	}
	return out
}

func nodeListeners(r *Resource) []listener {
	var out []listener
	if r.VirtualNodeSpec != nil {
		for _, l := range r.VirtualNodeSpec.Listeners {
			if l.PortMapping != nil {
				out = append(out, listener{l.PortMapping.Port, l.PortMapping.Protocol})
			}
		}
	}
	return out
}

func gatewayListeners(r *Resource) []listener {
	var out []listener
	if r.VirtualGatewaySpec != nil {
		for _, l := range r.VirtualGatewaySpec.Listeners {
			if l.PortMapping != nil {
				out = append(out, listener{l.PortMapping.Port, l.PortMapping.Protocol})
			}
		}
	}
	return out
}

func hasPort(ls []listener, port int) bool {
	return slices.ContainsFunc(ls, func(l listener) bool { return l.port == port })
}

// matchListener checks that a route of protocol, matching port (0 for
// any), fits the listeners of its router or gateway, owner.
func (c *refCheck) matchListener(routePath, portPath string, owner Key, ls []listener, protocol string, port int) {
	if !slices.ContainsFunc(ls, func(l listener) bool { return l.protocol == protocol }) {
		c.fail(routePath, owner, false, "%s has no %s listener", owner, protocol)
		return
	}
	switch {
	case port != 0 && !slices.Contains(ls, listener{port, protocol}):
		c.fail(portPath, owner, false, "%s has no %s listener on port %d", owner, protocol, port)
	case port == 0 && len(ls) > 1:
		c.fail(portPath, owner, false, "is required because %s has more than one listener", owner)
	}
}

// targetPort checks the port a route sends to against the listeners of
// the target (a virtual node, or the provider of a virtual service).
func (c *refCheck) targetPort(path string, target Key, ls []listener, port int) {
	switch {
	case port != 0 && !hasPort(ls, port):
		c.fail(path, target, false, "%s has no listener on port %d", target, port)
	case port == 0 && len(ls) > 1:
		c.fail(path, target, false, "is required because %s has more than one listener", target)
	}
}

// routeKind returns the route's protocol, its JSON field, its match port
// and its targets.
func routeKind(s *RouteSpec) (protocol, fieldName string, port int, targets []WeightedTarget) {
	switch {
	case s == nil:
	case s.HTTPRoute != nil:
		return "http", "httpRoute", httpMatchPort(s.HTTPRoute), httpTargets(s.HTTPRoute)
	case s.HTTP2Route != nil:
		return "http2", "http2Route", httpMatchPort(s.HTTP2Route), httpTargets(s.HTTP2Route)
	case s.GRPCRoute != nil:
		r := s.GRPCRoute
		if r.Match != nil {
			port = r.Match.Port
		}
		if r.Action != nil {
			targets = r.Action.WeightedTargets
		}
		return "grpc", "grpcRoute", port, targets
	case s.TCPRoute != nil:
		r := s.TCPRoute
		if r.Match != nil {
			port = r.Match.Port
		}
		if r.Action != nil {
			targets = r.Action.WeightedTargets
		}
		return "tcp", "tcpRoute", port, targets
	}
	return "", "", 0, nil
}

func httpMatchPort(r *HTTPRoute) int {
	if r.Match != nil {
		return r.Match.Port
	}
	return 0
}

func httpTargets(r *HTTPRoute) []WeightedTarget {
	if r.Action != nil {
		return r.Action.WeightedTargets
	}
	return nil
}

func routeTargets(s *RouteSpec) []WeightedTarget {
	_, _, _, ts := routeKind(s)
	return ts
}

func (c *refCheck) route() {
	r := c.r
	router := c.get("virtualRouter", Key{Kind: KindVirtualRouter, Mesh: r.Mesh, Name: r.VirtualRouter})
	if router == nil {
		return
	}
	protocol, name, port, targets := routeKind(r.RouteSpec)
	if protocol == "" {
		return // not valid on its own; Validate reports it
	}
	rp := "spec." + name
	c.matchListener(rp, rp+".match.port", router.Key(), routerListeners(router), protocol, port)
	tp := rp + ".action.weightedTargets"
	for i, t := range targets {
		p := index(tp, i)
		node := c.get(p+".virtualNode", Key{Kind: KindVirtualNode, Mesh: r.Mesh, Name: t.VirtualNode})
		if node == nil {
			return
		}
		c.targetPort(p+".port", node.Key(), nodeListeners(node), t.Port)
	}
}

func provider(r *Resource) *VirtualServiceProvider {
	if r.VirtualServiceSpec == nil {
		return nil
	}
	return r.VirtualServiceSpec.Provider
}

func (c *refCheck) virtualService() {
	p := provider(c.r)
	switch {
	case p == nil:
	case p.VirtualNode != nil:
		c.get("spec.provider.virtualNode.virtualNodeName", Key{Kind: KindVirtualNode, Mesh: c.r.Mesh, Name: p.VirtualNode.VirtualNodeName})
	case p.VirtualRouter != nil:
		c.get("spec.provider.virtualRouter.virtualRouterName", Key{Kind: KindVirtualRouter, Mesh: c.r.Mesh, Name: p.VirtualRouter.VirtualRouterName})
	}
}

// gatewayRouteKind returns the gateway route's protocol, JSON field, match
// port and target.
func gatewayRouteKind(s *GatewayRouteSpec) (protocol, fieldName string, port int, target *GatewayRouteTarget) {
	httpParts := func(r *HTTPGatewayRoute) (int, *GatewayRouteTarget) {
		var port int
		var t *GatewayRouteTarget
		if r.Match != nil {
			port = r.Match.Port
		}
		if r.Action != nil {
			t = r.Action.Target
		}
		return port, t
	}
	switch {
	case s == nil:
	case s.HTTPRoute != nil:
		port, target = httpParts(s.HTTPRoute)
		return "http", "httpRoute", port, target
	case s.HTTP2Route != nil:
		port, target = httpParts(s.HTTP2Route)
		return "http2", "http2Route", port, target
	case s.GRPCRoute != nil:
		r := s.GRPCRoute
		if r.Match != nil {
			port = r.Match.Port
		}
		if r.Action != nil {
			target = r.Action.Target
		}
		return "grpc", "grpcRoute", port, target
	}
	return "", "", 0, nil
}

func gatewayTarget(s *GatewayRouteSpec) *GatewayRouteTarget {
	_, _, _, t := gatewayRouteKind(s)
	return t
}

func (c *refCheck) gatewayRoute() {
	r := c.r
	gw := c.get("virtualGateway", Key{Kind: KindVirtualGateway, Mesh: r.Mesh, Name: r.VirtualGateway})
	if gw == nil {
		return
	}
	protocol, name, port, target := gatewayRouteKind(r.GatewayRouteSpec)
	if protocol == "" {
		return
	}
	rp := "spec." + name
	c.matchListener(rp, rp+".match.port", gw.Key(), gatewayListeners(gw), protocol, port)
	if target == nil || target.VirtualService == nil {
		return
	}
	tp := rp + ".action.target"
	svc := c.get(tp+".virtualService.virtualServiceName", Key{Kind: KindVirtualService, Mesh: r.Mesh, Name: target.VirtualService.VirtualServiceName})
	if svc == nil {
		return
	}
	// The target port selects a listener of the service's provider. A
	// missing provider is the virtual service's own problem, reported
	// against it.
	p := provider(svc)
	var owner *Resource
	var ls []listener
	switch {
	case p != nil && p.VirtualNode != nil:
		owner = c.l.Get(Key{Kind: KindVirtualNode, Mesh: r.Mesh, Name: p.VirtualNode.VirtualNodeName})
		if owner != nil {
			ls = nodeListeners(owner)
		}
	case p != nil && p.VirtualRouter != nil:
		owner = c.l.Get(Key{Kind: KindVirtualRouter, Mesh: r.Mesh, Name: p.VirtualRouter.VirtualRouterName})
		if owner != nil {
			ls = routerListeners(owner)
		}
	}
	if owner == nil {
		if target.Port != 0 {
			c.fail(tp+".port", svc.Key(), false, "%s has no provider with a listener on port %d", svc.Key(), target.Port)
		}
		return
	}
	c.targetPort(tp+".port", owner.Key(), ls, target.Port)
}
