package table

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	endpointv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/endpoint/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	resourcev3 "github.com/meshlens/meshlens/internal/xdsproto/resource"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshlens/meshlens/internal/proxy/filters/ratelimit"
)

// Resources is one set of xDS resources, as the xDS client holds them
// after a round of responses: the input of Compile.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	// Versions is copied into the Snapshot, keyed by type URL.
	Versions map[string]string
}

// CompileOptions says what kind of data plane the resources are for and
// how strict to be about missing references.
type CompileOptions struct {
	// Gateway: the proxy runs as a virtual gateway, so every listener is
	// a Gateway listener. Otherwise it is a sidecar and listener names
	// decide (lds_ingress_* Inbound, lds_egress_* Outbound, otherwise the
	// listener's traffic_direction, Outbound when unspecified).
	Gateway bool
	// AllowMissing compiles a set whose route configurations or EDS
	// assignments have not all been received, as Envoy does when
	// initial_fetch_timeout expires: a missing assignment leaves its
	// cluster without endpoints (503) and a missing route configuration
	// is an empty table (404).
	AllowMissing bool
}

// Envoy's defaults for fields the resources leave unset.
const (
	defaultConnectTimeout    = 5 * time.Second
	defaultRouteTimeout      = 15 * time.Second
	defaultHTTPIdleTimeout   = time.Hour
	defaultStreamIdleTimeout = 5 * time.Minute
	defaultTCPIdleTimeout    = time.Hour
	defaultRetryBase         = 25 * time.Millisecond
	defaultPanicThreshold    = 50
)

// maxErrors bounds how many problems one Compile reports: enough to fix a
// config in one round, few enough for a NACK's error_detail.
const maxErrors = 10

// Well-known names and type URLs of the extensions Compile understands.
const (
	nameHCM            = "envoy.filters.network.http_connection_manager"
	nameTCPProxy       = "envoy.filters.network.tcp_proxy"
	nameRouter         = "envoy.filters.http.router"
	nameTLS            = "envoy.transport_sockets.tls"
	nameRawBuffer      = "envoy.transport_sockets.raw_buffer"
	nameOriginalDst    = "envoy.filters.listener.original_dst"
	nameTLSInspector   = "envoy.filters.listener.tls_inspector"
	nameHTTPInspector  = "envoy.filters.listener.http_inspector"
	nameFileLog        = "envoy.access_loggers.file"
	nameStdoutLog      = "envoy.access_loggers.stdout"
	nameStderrLog      = "envoy.access_loggers.stderr"
	nameHTTPProtocol   = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	typePrefix         = "type.googleapis.com/"
	typeHCM            = typePrefix + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	typeTCPProxy       = typePrefix + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	typeRouter         = typePrefix + "envoy.extensions.filters.http.router.v3.Router"
	typeDownstreamTLS  = typePrefix + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	typeUpstreamTLS    = typePrefix + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	typeRawBuffer      = typePrefix + "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
	typeOriginalDst    = typePrefix + "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
	typeTLSInspector   = typePrefix + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
	typeHTTPInspector  = typePrefix + "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
	typeFileLog        = typePrefix + "envoy.extensions.access_loggers.file.v3.FileAccessLog"
	typeStdoutLog      = typePrefix + "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
	typeStderrLog      = typePrefix + "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
	typeHTTPProtocol   = typePrefix + nameHTTPProtocol
	typeRoundRobin     = typePrefix + "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin"
	typeLeastRequest   = typePrefix + "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest"
	typeRandom         = typePrefix + "envoy.extensions.load_balancing_policies.random.v3.Random"
	errNotSupported    = "is not supported"
	errNotSupportedFmt = "%s " + errNotSupported
)

// Compile builds a Snapshot from one set of resources: it resolves every
// reference (RDS names, cluster names, EDS service names), compiles
// regexes, applies Envoy's defaults and checks what Envoy would check.
// An error names the resource and the field, e.g.
//
//	route config rds_x: virtual_hosts[0].routes[2].match.safe_regex: error parsing regexp: ...
//
// and joins up to ten problems. Errors about references that were not
// received wrap ErrMissing. opts is at most one CompileOptions; none means
// a sidecar that requires every reference.
func Compile(res Resources, opts ...CompileOptions) (*Snapshot, error) {
	c := &compiler{
		cla:         map[string]*endpointv3.ClusterLoadAssignment{},
		routeCfgs:   map[string]*routev3.RouteConfiguration{},
		clusters:    map[string]*Cluster{},
		routes:      map[string]*RouteTable{},
		placeholder: map[string]*Cluster{},
		now:         ratelimit.Now(),
	}
	if len(opts) > 0 {
		c.opts = opts[0]
	}
	return c.compile(res)
}

// compiler holds one Compile's indexes and problems.
type compiler struct {
	opts        CompileOptions
	errs        []error
	cla         map[string]*endpointv3.ClusterLoadAssignment
	routeCfgs   map[string]*routev3.RouteConfiguration
	clusters    map[string]*Cluster
	routes      map[string]*RouteTable
	placeholder map[string]*Cluster
	// now starts the token buckets of the rate limits compiled.
	now int64
	// rateLimits collects every HTTP rate limit configuration compiled
	// (listener and route level), for the runtime to provision.
	rateLimits []*ratelimit.Config
}

// fail records one problem of a resource, up to maxErrors.
func (c *compiler) fail(kind, name string, err error) {
	if len(c.errs) < maxErrors {
		c.errs = append(c.errs, fmt.Errorf("%s %s: %w", kind, name, err))
	}
}

func (c *compiler) compile(res Resources) (*Snapshot, error) {
	snap := &Snapshot{
		Versions:  map[string]string{},
		Clusters:  c.clusters,
		Routes:    c.routes,
		Resources: map[string][]xdsproto.Message{},
	}
	for k, v := range res.Versions {
		snap.Versions[k] = v
	}
	// Endpoints first: clusters need them.
	c.compileEndpoints(res.Endpoints, snap)
	c.compileClusters(res.Clusters, snap)
	c.compileRoutes(res.Routes, snap)
	c.compileListeners(res.Listeners, snap)
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	snap.RateLimits = c.rateLimits
	return snap, nil
}

// compileEndpoints keeps the cluster load assignments for the clusters.
func (c *compiler) compileEndpoints(clas []*endpointv3.ClusterLoadAssignment, snap *Snapshot) {
	for i, cla := range clas {
		name := cla.GetClusterName()
		if cla == nil {
			c.fail("cluster load assignment", "#"+strconv.Itoa(i), errors.New("nil resource"))
			continue
		}
		if err := cla.Validate(); err != nil {
			c.fail("cluster load assignment", name, err)
			continue
		}
		if _, dup := c.cla[name]; dup {
			c.fail("cluster load assignment", name, errors.New("received twice"))
			continue
		}
		c.cla[name] = cla
		snap.Resources[resourcev3.EndpointType] = append(snap.Resources[resourcev3.EndpointType], cla)
	}
}

// compileClusters compiles the clusters with their endpoints.
func (c *compiler) compileClusters(cls []*clusterv3.Cluster, snap *Snapshot) {
	for i, cl := range cls {
		if cl == nil {
			c.fail("cluster", "#"+strconv.Itoa(i), errors.New("nil resource"))
			continue
		}
		snap.Resources[resourcev3.ClusterType] = append(snap.Resources[resourcev3.ClusterType], cl)
		if _, dup := c.clusters[cl.GetName()]; dup {
			c.fail("cluster", cl.GetName(), errors.New("received twice"))
			continue
		}
		out, err := c.cluster(cl)
		if err != nil {
			c.fail("cluster", cl.GetName(), err)
			continue
		}
		c.clusters[out.Name] = out
	}
}

// compileRoutes compiles the route configurations received over RDS:
// Envoy does not validate their clusters unless told to.
func (c *compiler) compileRoutes(rcs []*routev3.RouteConfiguration, snap *Snapshot) {
	for i, rc := range rcs {
		if rc == nil {
			c.fail("route config", "#"+strconv.Itoa(i), errors.New("nil resource"))
			continue
		}
		snap.Resources[resourcev3.RouteType] = append(snap.Resources[resourcev3.RouteType], rc)
		if _, dup := c.routeCfgs[rc.GetName()]; dup {
			c.fail("route config", rc.GetName(), errors.New("received twice"))
			continue
		}
		c.routeCfgs[rc.GetName()] = rc
		rt, err := c.routeTable(rc, false)
		if err != nil {
			c.fail("route config", rc.GetName(), err)
			continue
		}
		c.routes[rt.Name] = rt
	}
}

// compileListeners compiles the listeners, sorted by name; two that bind
// the same address are refused.
func (c *compiler) compileListeners(ls []*listenerv3.Listener, snap *Snapshot) {
	seen := map[string]bool{}
	bound := map[netip.AddrPort]string{}
	for i, l := range ls {
		if l == nil {
			c.fail("listener", "#"+strconv.Itoa(i), errors.New("nil resource"))
			continue
		}
		snap.Resources[resourcev3.ListenerType] = append(snap.Resources[resourcev3.ListenerType], l)
		if seen[l.GetName()] {
			c.fail("listener", l.GetName(), errors.New("received twice"))
			continue
		}
		seen[l.GetName()] = true
		out, err := c.listener(l)
		if err != nil {
			c.fail("listener", l.GetName(), err)
			continue
		}
		if out == nil {
			continue // api_listener: for proxyless clients
		}
		if out.BindToPort {
			if other, dup := bound[out.Address]; dup {
				c.fail("listener", out.Name, fmt.Errorf("address %s is already used by listener %s", out.Address, other))
				continue
			}
			bound[out.Address] = out.Name
		}
		snap.Listeners = append(snap.Listeners, out)
	}
	slices.SortFunc(snap.Listeners, func(a, b *Listener) int { return strings.Compare(a.Name, b.Name) })
}

// resolve finds a cluster by name. A missing one is an error when the
// referrer validates clusters; otherwise it is a NotFound placeholder,
// one per name, so every referrer sees the same object.
func (c *compiler) resolve(name string, validate bool) (*Cluster, error) {
	if cl, ok := c.clusters[name]; ok {
		return cl, nil
	}
	if validate {
		return nil, fmt.Errorf("cluster %q not found (validate_clusters is on)", name)
	}
	if p, ok := c.placeholder[name]; ok {
		return p, nil
	}
	p := &Cluster{Name: name, ServiceName: name, NotFound: true, ConnectTimeout: defaultConnectTimeout, PanicThreshold: defaultPanicThreshold}
	c.placeholder[name] = p
	return p, nil
}

// ---- helpers ----

// unpack decodes a typed config into m after checking its type, then
// runs the proto's own validation (the constraints Envoy enforces).
func unpack(a *anypb.Any, m xdsproto.Message) error {
	if a == nil {
		return errors.New("typed_config is required")
	}
	want := typePrefix + string(m.XDSTypeName())
	if a.GetTypeUrl() != want {
		return fmt.Errorf("typed_config is %q, want %q", a.GetTypeUrl(), want)
	}
	if err := xdsproto.UnmarshalAny(a, m); err != nil {
		return fmt.Errorf("typed_config: %w", err)
	}
	if v, ok := m.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// duration converts a proto duration, using def when it is unset.
func duration(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}
