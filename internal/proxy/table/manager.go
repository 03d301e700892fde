package table

import (
	"errors"
	"fmt"
	"strings"

	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/tcp_proxy/v3"

	"google.golang.org/protobuf/types/known/anypb"
)

// Compiling the network filters: the HTTP connection manager and tcp_proxy.

func (c *compiler) httpManager(a *anypb.Any) (*HTTPManager, error) {
	var hcm hcmv3.HttpConnectionManager
	if err := unpack(a, &hcm); err != nil {
		return nil, err
	}
	out := &HTTPManager{
		StatPrefix:        hcm.GetStatPrefix(),
		IdleTimeout:       defaultHTTPIdleTimeout,
		StreamIdleTimeout: defaultStreamIdleTimeout,
	}
	switch hcm.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO:
		out.Codec = CodecAuto
	case hcmv3.HttpConnectionManager_HTTP1:
		out.Codec = CodecHTTP1
	case hcmv3.HttpConnectionManager_HTTP2:
		out.Codec = CodecHTTP2
	default:
		return nil, fmt.Errorf("codec_type %s "+errNotSupported, hcm.GetCodecType())
	}
	if d := hcm.GetCommonHttpProtocolOptions().GetIdleTimeout(); d != nil {
		out.IdleTimeout = d.AsDuration()
	}
	if d := hcm.GetStreamIdleTimeout(); d != nil {
		out.StreamIdleTimeout = d.AsDuration()
	}
	out.RequestTimeout = hcm.GetRequestTimeout().AsDuration()
	if kb := hcm.GetMaxRequestHeadersKb(); kb != nil {
		out.MaxRequestHeaders = kb.GetValue() * 1024
	}
	out.MaxHeadersCount = DefaultMaxHeadersCount
	if n := hcm.GetCommonHttpProtocolOptions().GetMaxHeadersCount(); n != nil && n.GetValue() > 0 {
		out.MaxHeadersCount = n.GetValue()
	}
	logs, err := accessLogs(hcm.GetAccessLog())
	if err != nil {
		return nil, err
	}
	out.AccessLogs = logs
	for i, u := range hcm.GetUpgradeConfigs() {
		typ := strings.ToLower(u.GetUpgradeType())
		switch {
		case typ == "connect":
			return nil, fmt.Errorf("upgrade_configs[%d]: upgrade_type CONNECT "+errNotSupported, i)
		case len(u.GetFilters()) > 0:
			return nil, fmt.Errorf("upgrade_configs[%d].filters "+errNotSupported, i)
		case u.GetEnabled() != nil && !u.GetEnabled().GetValue():
			continue
		}
		out.Upgrades = append(out.Upgrades, typ)
	}

	tr, err := c.tracing(hcm.GetTracing())
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	out.Tracing = tr

	if err := c.httpFilters(hcm.GetHttpFilters(), out); err != nil {
		return nil, err
	}

	if err := c.hcmRoutes(&hcm, out); err != nil {
		return nil, err
	}
	return out, nil
}

// hcmRoutes finds a connection manager's route table: from RDS (missing
// is an error unless AllowMissing), or inline.
func (c *compiler) hcmRoutes(hcm *hcmv3.HttpConnectionManager, out *HTTPManager) error {
	switch rs := hcm.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		name := rs.Rds.GetRouteConfigName()
		out.RouteConfigName = name
		rt, ok := c.routes[name]
		switch {
		case ok:
			out.Routes = rt
		case c.routeCfgs[name] != nil:
			// Received but invalid: its own error is already reported.
			return fmt.Errorf("route config %q is invalid", name)
		case c.opts.AllowMissing:
			out.Routes = emptyRouteTable(name)
			c.routes[name] = out.Routes
		default:
			return fmt.Errorf("route config %q %w", name, ErrMissing)
		}
	case *hcmv3.HttpConnectionManager_RouteConfig:
		// Inline route configurations are "static" for Envoy: their
		// clusters are validated unless told otherwise.
		rt, err := c.routeTable(rs.RouteConfig, true)
		if err != nil {
			return fmt.Errorf("route_config: %w", err)
		}
		out.RouteConfigName = rt.Name
		out.Routes = rt
		if _, taken := c.routes[rt.Name]; !taken && rt.Name != "" {
			c.routes[rt.Name] = rt
		}
	default:
		return errors.New("scoped_routes " + errNotSupported + "; use rds or route_config")
	}
	return nil
}

func (c *compiler) tcpProxy(a *anypb.Any) (*TCPProxy, error) {
	var tp tcpproxyv3.TcpProxy
	if err := unpack(a, &tp); err != nil {
		return nil, err
	}
	if tp.GetTunnelingConfig() != nil {
		return nil, errors.New("tunneling_config " + errNotSupported)
	}
	if tp.GetOnDemand() != nil {
		return nil, errors.New("on_demand " + errNotSupported)
	}
	out := &TCPProxy{StatPrefix: tp.GetStatPrefix(), IdleTimeout: defaultTCPIdleTimeout}
	if d := tp.GetIdleTimeout(); d != nil {
		out.IdleTimeout = d.AsDuration()
	}
	switch cs := tp.GetClusterSpecifier().(type) {
	case *tcpproxyv3.TcpProxy_Cluster:
		cl, err := c.resolve(cs.Cluster, false)
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		out.Clusters = []WeightedCluster{{Name: cs.Cluster, Weight: 1, Cluster: cl}}
		out.TotalWeight = 1
	case *tcpproxyv3.TcpProxy_WeightedClusters:
		var total uint64
		for i, w := range cs.WeightedClusters.GetClusters() {
			cl, err := c.resolve(w.GetName(), false)
			if err != nil {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d]: %w", i, err)
			}
			out.Clusters = append(out.Clusters, WeightedCluster{Name: w.GetName(), Weight: w.GetWeight(), Cluster: cl})
			total += uint64(w.GetWeight())
		}
		if err := checkTotal(total); err != nil {
			return nil, fmt.Errorf("weighted_clusters: %w", err)
		}
		out.TotalWeight = uint32(total)
	default:
		return nil, errors.New("no cluster or weighted_clusters")
	}
	logs, err := accessLogs(tp.GetAccessLog())
	if err != nil {
		return nil, err
	}
	out.AccessLogs = logs
	return out, nil
}

// checkTotal validates the sum of a weighted cluster set.
func checkTotal(total uint64) error {
	switch {
	case total == 0:
		return errors.New("the sum of the weights must be greater than 0")
	case total > 1<<32-1:
		return fmt.Errorf("the sum of the weights (%d) overflows uint32", total)
	}
	return nil
}
