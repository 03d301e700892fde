package table

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	endpointv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/endpoint/v3"
	httpv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
)

// Envoy's outlier detection defaults.
const (
	defaultConsecutive5xx     = 5
	defaultOutlierInterval    = 10 * time.Second
	defaultBaseEjectionTime   = 30 * time.Second
	defaultMaxEjectionPercent = 10
	defaultEnforcing5xx       = 100
)

func (c *compiler) cluster(cl *clusterv3.Cluster) (*Cluster, error) {
	if err := cl.Validate(); err != nil {
		return nil, err
	}
	out := &Cluster{
		Name:           cl.GetName(),
		ServiceName:    cl.GetName(),
		ConnectTimeout: duration(cl.GetConnectTimeout(), defaultConnectTimeout),
		PanicThreshold: defaultPanicThreshold,
		Meta:           meshMetadata(cl.GetMetadata()),
	}
	cla, err := c.discovery(cl, out)
	if err != nil {
		return nil, err
	}
	lb, err := lbPolicy(cl, out.Type)
	if err != nil {
		return nil, err
	}
	out.LB = lb
	if p := cl.GetCommonLbConfig().GetHealthyPanicThreshold(); p != nil {
		out.PanicThreshold = p.GetValue()
	}

	autoHTTP, err := protocolOptions(cl, out)
	if err != nil {
		return nil, err
	}
	out.Limits = circuitBreakers(cl.GetCircuitBreakers())
	out.Outlier = outlierDetection(cl.GetOutlierDetection())
	if hcs := cl.GetHealthChecks(); len(hcs) > 0 {
		hc, err := healthCheck(hcs[0])
		if err != nil {
			return nil, fmt.Errorf("health_checks[0]: %w", err)
		}
		out.HealthCheck = hc
	}
	if len(cl.GetTransportSocketMatches()) > 0 {
		return nil, errors.New("transport_socket_matches " + errNotSupported)
	}
	if err := clusterTransport(cl, out); err != nil {
		return nil, err
	}
	if autoHTTP && out.TLS != nil && len(out.TLS.ALPN) == 0 {
		out.TLS.ALPN = []string{"h2", "http/1.1"}
	}

	if cla != nil {
		field := "load_assignment"
		if out.Type == ClusterEDS {
			field = "endpoints (service " + strconv.Quote(out.ServiceName) + ")"
		}
		eps, err := endpoints(cla, out.Type)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if out.Type == ClusterLogicalDNS && len(eps) != 1 {
			return nil, fmt.Errorf("%s: LOGICAL_DNS takes exactly one endpoint, got %d", field, len(eps))
		}
		out.Endpoints = eps
	}
	out.prepare()
	return out, nil
}

// discovery reads how the cluster finds its endpoints (its type) and
// returns the load assignment that lists them: EDS's, or the cluster's
// own; nil for ORIGINAL_DST, or for EDS not yet received when
// AllowMissing.
func (c *compiler) discovery(cl *clusterv3.Cluster, out *Cluster) (*endpointv3.ClusterLoadAssignment, error) {
	switch t := cl.GetClusterDiscoveryType().(type) {
	case *clusterv3.Cluster_ClusterType:
		return nil, fmt.Errorf("cluster_type %q "+errNotSupported, t.ClusterType.GetName())
	}
	switch cl.GetType() {
	case clusterv3.Cluster_EDS:
		out.Type = ClusterEDS
		if sn := cl.GetEdsClusterConfig().GetServiceName(); sn != "" {
			out.ServiceName = sn
		}
		cla, ok := c.cla[out.ServiceName]
		if !ok && !c.opts.AllowMissing {
			return nil, fmt.Errorf("endpoints for service %q %w", out.ServiceName, ErrMissing)
		}
		if cl.GetLoadAssignment() != nil {
			return nil, errors.New("load_assignment is not allowed with type EDS")
		}
		return cla, nil
	case clusterv3.Cluster_STATIC:
		out.Type = ClusterStatic
	case clusterv3.Cluster_STRICT_DNS:
		out.Type = ClusterStrictDNS
	case clusterv3.Cluster_LOGICAL_DNS:
		out.Type = ClusterLogicalDNS
	case clusterv3.Cluster_ORIGINAL_DST:
		out.Type = ClusterOriginalDst
		if cl.GetLoadAssignment() != nil {
			return nil, errors.New("load_assignment is not allowed with type ORIGINAL_DST")
		}
		return nil, nil
	default:
		return nil, fmt.Errorf("type %s "+errNotSupported, cl.GetType())
	}
	return cl.GetLoadAssignment(), nil
}

// clusterTransport reads the cluster's transport socket: TLS or raw
// buffer.
func clusterTransport(cl *clusterv3.Cluster, out *Cluster) error {
	if ts := cl.GetTransportSocket(); ts != nil {
		switch {
		case ts.GetName() == nameTLS || ts.GetTypedConfig().GetTypeUrl() == typeUpstreamTLS:
			tls, err := upstreamTLS(ts)
			if err != nil {
				return fmt.Errorf("transport_socket: %w", err)
			}
			out.TLS = tls
		case ts.GetName() == nameRawBuffer || ts.GetTypedConfig().GetTypeUrl() == typeRawBuffer:
		default:
			return fmt.Errorf("transport_socket: %q "+errNotSupported, ts.GetName())
		}
	}
	return nil
}

// lbPolicy maps lb_policy, or the first policy of load_balancing_policy
// meshlens knows, to an LBPolicy.
func lbPolicy(cl *clusterv3.Cluster, typ ClusterType) (LBPolicy, error) {
	if lbp := cl.GetLoadBalancingPolicy(); lbp != nil {
		for _, p := range lbp.GetPolicies() {
			switch p.GetTypedExtensionConfig().GetTypedConfig().GetTypeUrl() {
			case typeRoundRobin:
				return LBRoundRobin, nil
			case typeLeastRequest:
				return LBLeastRequest, nil
			case typeRandom:
				return LBRandom, nil
			}
		}
		return 0, errors.New("load_balancing_policy: none of the policies is round_robin, least_request or random")
	}
	switch p := cl.GetLbPolicy(); p {
	case clusterv3.Cluster_ROUND_ROBIN:
		return LBRoundRobin, nil
	case clusterv3.Cluster_LEAST_REQUEST:
		return LBLeastRequest, nil
	case clusterv3.Cluster_RANDOM:
		return LBRandom, nil
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		if typ != ClusterOriginalDst {
			return 0, errors.New("lb_policy CLUSTER_PROVIDED is only valid with type ORIGINAL_DST")
		}
		return LBRoundRobin, nil
	default:
		return 0, fmt.Errorf("lb_policy %s "+errNotSupported, p)
	}
}

// protocolOptions reads the upstream HTTP protocol: the legacy
// http2_protocol_options or HttpProtocolOptions under
// typed_extension_protocol_options. auto reports auto_config: the
// protocol is negotiated by ALPN.
func protocolOptions(cl *clusterv3.Cluster, out *Cluster) (auto bool, err error) {
	if cl.GetHttp2ProtocolOptions() != nil {
		out.HTTP2 = true
	}
	for key, a := range cl.GetTypedExtensionProtocolOptions() {
		if key != nameHTTPProtocol && key != typeHTTPProtocol && a.GetTypeUrl() != typeHTTPProtocol {
			continue
		}
		var opts httpv3.HttpProtocolOptions
		if err := unpack(a, &opts); err != nil {
			return false, fmt.Errorf("typed_extension_protocol_options[%q]: %w", key, err)
		}
		switch p := opts.GetUpstreamProtocolOptions().(type) {
		case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
			switch p.ExplicitHttpConfig.GetProtocolConfig().(type) {
			case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions:
				out.HTTP2 = true
			case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions:
				out.HTTP2 = false
			default:
				return false, fmt.Errorf("typed_extension_protocol_options[%q]: HTTP/3 "+errNotSupported, key)
			}
		case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
			out.UseDownstreamProtocol = true
		case *httpv3.HttpProtocolOptions_AutoConfig:
			auto = true
		}
	}
	return auto, nil
}

func circuitBreakers(cb *clusterv3.CircuitBreakers) CircuitBreakers {
	for _, t := range cb.GetThresholds() {
		if t.GetPriority() != corev3.RoutingPriority_DEFAULT {
			continue
		}
		out := CircuitBreakers{
			MaxConnections:     t.GetMaxConnections().GetValue(),
			MaxPendingRequests: t.GetMaxPendingRequests().GetValue(),
			MaxRequests:        t.GetMaxRequests().GetValue(),
			MaxRetries:         t.GetMaxRetries().GetValue(),
		}
		if rb := t.GetRetryBudget(); rb != nil {
			out.RetryBudget = &RetryBudget{Percent: DefaultRetryBudgetPercent, MinConcurrency: DefaultRetryBudgetMinConcurrency}
			if p := rb.GetBudgetPercent(); p != nil {
				v := p.GetValue()
				if !(v >= 0) { // negative or NaN
					v = 0
				}
				out.RetryBudget.Percent = min(v, 100)
			}
			if m := rb.GetMinRetryConcurrency(); m != nil {
				out.RetryBudget.MinConcurrency = m.GetValue()
			}
		}
		return out
	}
	return CircuitBreakers{}
}

func outlierDetection(od *clusterv3.OutlierDetection) *OutlierDetection {
	if od == nil {
		return nil
	}
	out := &OutlierDetection{
		Consecutive5xx:          defaultConsecutive5xx,
		Interval:                duration(od.GetInterval(), defaultOutlierInterval),
		BaseEjectionTime:        duration(od.GetBaseEjectionTime(), defaultBaseEjectionTime),
		MaxEjectionPercent:      defaultMaxEjectionPercent,
		EnforcingConsecutive5xx: defaultEnforcing5xx,
	}
	if v := od.GetConsecutive_5Xx(); v != nil {
		out.Consecutive5xx = v.GetValue()
	}
	if v := od.GetMaxEjectionPercent(); v != nil {
		out.MaxEjectionPercent = v.GetValue()
	}
	if v := od.GetEnforcingConsecutive_5Xx(); v != nil {
		out.EnforcingConsecutive5xx = v.GetValue()
	}
	return out
}

func healthCheck(hc *corev3.HealthCheck) (*HealthCheck, error) {
	out := &HealthCheck{
		Timeout:            hc.GetTimeout().AsDuration(),
		Interval:           hc.GetInterval().AsDuration(),
		HealthyThreshold:   hc.GetHealthyThreshold().GetValue(),
		UnhealthyThreshold: hc.GetUnhealthyThreshold().GetValue(),
	}
	switch h := hc.GetHealthChecker().(type) {
	case *corev3.HealthCheck_HttpHealthCheck_:
		out.HTTPPath = h.HttpHealthCheck.GetPath()
		out.HTTPHost = h.HttpHealthCheck.GetHost()
		out.HTTP2 = h.HttpHealthCheck.GetCodecClientType() == typev3.CodecClientType_HTTP2
		if h.HttpHealthCheck.GetCodecClientType() == typev3.CodecClientType_HTTP3 {
			return nil, errors.New("http_health_check: HTTP/3 " + errNotSupported)
		}
	case *corev3.HealthCheck_GrpcHealthCheck_:
		out.GRPC = true
		out.GRPCService = h.GrpcHealthCheck.GetServiceName()
	case *corev3.HealthCheck_TcpHealthCheck_:
	default:
		return nil, errors.New("only http, grpc and tcp health checks are supported")
	}
	return out, nil
}

// endpoints flattens an assignment's localities. EDS and STATIC endpoints
// must be IP addresses; DNS clusters keep the host name.
func endpoints(cla *endpointv3.ClusterLoadAssignment, typ ClusterType) ([]Endpoint, error) {
	var out []Endpoint
	for i, loc := range cla.GetEndpoints() {
		if loc.GetLedsClusterLocalityConfig() != nil {
			return nil, fmt.Errorf("endpoints[%d]: leds_cluster_locality_config "+errNotSupported, i)
		}
		for j, lbe := range loc.GetLbEndpoints() {
			field := fmt.Sprintf("endpoints[%d].lb_endpoints[%d]", i, j)
			ep := lbe.GetEndpoint()
			if ep == nil {
				return nil, fmt.Errorf("%s: endpoint_name "+errNotSupported, field)
			}
			e := Endpoint{
				Weight:          1,
				Priority:        loc.GetPriority(),
				Zone:            loc.GetLocality().GetZone(),
				HealthCheckPort: ep.GetHealthCheckConfig().GetPortValue(),
			}
			if w := lbe.GetLoadBalancingWeight(); w != nil {
				e.Weight = w.GetValue()
			}
			switch lbe.GetHealthStatus() {
			case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
				e.Healthy = true
			}
			sa := ep.GetAddress().GetSocketAddress()
			if sa == nil {
				return nil, fmt.Errorf("%s.endpoint.address: only socket addresses are supported", field)
			}
			if typ == ClusterStrictDNS || typ == ClusterLogicalDNS {
				if _, ok := sa.GetPortSpecifier().(*corev3.SocketAddress_NamedPort); ok {
					return nil, fmt.Errorf("%s.endpoint.address: named_port "+errNotSupported, field)
				}
				e.Hostname = net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
				if ip, err := netip.ParseAddr(sa.GetAddress()); err == nil && sa.GetPortValue() <= 65535 {
					e.Address = netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue()))
				}
			} else {
				ap, err := socketAddress(ep.GetAddress())
				if err != nil {
					return nil, fmt.Errorf("%s.endpoint.address: %w", field, err)
				}
				e.Address = ap
			}
			out = append(out, e)
		}
	}
	return out, nil
}
