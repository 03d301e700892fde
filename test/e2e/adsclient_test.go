package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// adsClient is a minimal Envoy-like ADS client: it asks for every listener
// and cluster, then for the route configurations and endpoint sets they
// name, ACKs every response, and keeps the latest of each resource.
type adsClient struct {
	t      testing.TB
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	conn   *grpc.ClientConn
	node   *corev3.Node
	cancel context.CancelFunc

	mu        sync.Mutex
	versions  map[string]string                // type URL -> version
	resources map[string]map[string]*anypb.Any // type URL -> name -> resource
	asked     map[string][]string              // type URL -> names asked
	updates   chan string                      // type URL of each applied response
	err       error
}

func dialADS(t testing.TB, addr, nodeID string) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &adsClient{
		t: t, stream: stream, conn: conn, cancel: cancel,
		node:      &corev3.Node{Id: nodeID, Cluster: "e2e", UserAgentName: "envoy"},
		versions:  map[string]string{},
		resources: map[string]map[string]*anypb.Any{},
		asked:     map[string][]string{},
		updates:   make(chan string, 100),
	}
	t.Cleanup(c.close)
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
		if err := c.send(typ, nil, "", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	go c.recv()
	return c
}

func (c *adsClient) close() {
	c.cancel()
	c.conn.Close()
}

func (c *adsClient) send(typ string, names []string, version, nonce, errDetail string) error {
	c.mu.Lock()
	c.asked[typ] = names
	c.mu.Unlock()
	req := &discoveryv3.DiscoveryRequest{Node: c.node, TypeUrl: typ, ResourceNames: names, VersionInfo: version, ResponseNonce: nonce}
	_ = errDetail
	return c.stream.Send(req)
}

func (c *adsClient) recv() {
	for {
		resp, err := c.stream.Recv()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		typ := resp.GetTypeUrl()
		byName := map[string]*anypb.Any{}
		var follow []string // route configs or clusters named by what arrived
		for _, res := range resp.GetResources() {
			name, more := nameAndRefs(res)
			byName[name] = res
			follow = append(follow, more...)
		}
		c.mu.Lock()
		if typ == resourcev3.ListenerType || typ == resourcev3.ClusterType {
			c.resources[typ] = byName
		} else {
			if c.resources[typ] == nil {
				c.resources[typ] = map[string]*anypb.Any{}
			}
			for n, r := range byName {
				c.resources[typ][n] = r
			}
		}
		c.versions[typ] = resp.GetVersionInfo()
		c.mu.Unlock()
		c.send(typ, c.askedNames(typ), resp.GetVersionInfo(), resp.GetNonce(), "")
		switch typ {
		case resourcev3.ListenerType:
			c.send(resourcev3.RouteType, follow, c.version(resourcev3.RouteType), "", "")
		case resourcev3.ClusterType:
			c.send(resourcev3.EndpointType, follow, c.version(resourcev3.EndpointType), "", "")
		}
		select {
		case c.updates <- typ:
		default:
		}
	}
}

func (c *adsClient) askedNames(typ string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asked[typ]
}

func (c *adsClient) version(typ string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[typ]
}

// nameAndRefs returns a resource's name and the RDS / EDS names it refers to.
func nameAndRefs(res *anypb.Any) (string, []string) {
	switch res.GetTypeUrl() {
	case resourcev3.ListenerType:
		var l listenerv3.Listener
		if res.UnmarshalTo(&l) != nil {
			return "", nil
		}
		var refs []string
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig() != nil && f.GetTypedConfig().UnmarshalTo(&hcm) == nil {
					if rds := hcm.GetRds(); rds != nil {
						refs = append(refs, rds.GetRouteConfigName())
					}
				}
			}
		}
		if api := l.GetApiListener().GetApiListener(); api != nil {
			var hcm hcmv3.HttpConnectionManager
			if api.UnmarshalTo(&hcm) == nil && hcm.GetRds() != nil {
				refs = append(refs, hcm.GetRds().GetRouteConfigName())
			}
		}
		return l.GetName(), refs
	case resourcev3.ClusterType:
		var cl clusterv3.Cluster
		if res.UnmarshalTo(&cl) != nil {
			return "", nil
		}
		if cl.GetType() == clusterv3.Cluster_EDS {
			name := cl.GetName()
			if sn := cl.GetEdsClusterConfig().GetServiceName(); sn != "" {
				name = sn
			}
			return cl.GetName(), []string{name}
		}
		return cl.GetName(), nil
	case resourcev3.RouteType:
		var rc routev3.RouteConfiguration
		res.UnmarshalTo(&rc)
		return rc.GetName(), nil
	case resourcev3.EndpointType:
		var cla endpointv3.ClusterLoadAssignment
		res.UnmarshalTo(&cla)
		return cla.GetClusterName(), nil
	}
	return "", nil
}

// waitFor polls the client's state until cond holds.
func (c *adsClient) waitFor(timeout time.Duration, what string, cond func(c *adsClient) error) time.Duration {
	c.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(c); err == nil {
			return time.Since(start)
		}
		select {
		case <-c.updates:
		case <-time.After(20 * time.Millisecond):
		}
	}
	c.mu.Lock()
	streamErr := c.err
	c.mu.Unlock()
	c.t.Fatalf("%s: not within %s: %v (stream error: %v)", what, timeout, err, streamErr)
	return 0
}

// routeConfigs returns every route configuration received.
func (c *adsClient) routeConfigs() []*routev3.RouteConfiguration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*routev3.RouteConfiguration
	for _, r := range c.resources[resourcev3.RouteType] {
		var rc routev3.RouteConfiguration
		if r.UnmarshalTo(&rc) == nil {
			out = append(out, proto.Clone(&rc).(*routev3.RouteConfiguration))
		}
	}
	return out
}

// endpoints returns the addresses in the load assignment of cluster.
func (c *adsClient) endpoints(cluster string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.resources[resourcev3.EndpointType][cluster]
	if !ok {
		return nil, fmt.Errorf("no endpoints for %s yet", cluster)
	}
	var cla endpointv3.ClusterLoadAssignment
	if err := r.UnmarshalTo(&cla); err != nil {
		return nil, err
	}
	var out []string
	for _, le := range cla.GetEndpoints() {
		for _, e := range le.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
		}
	}
	return out, nil
}

// clusterWeights finds, in any route configuration, the weighted clusters
// of the first route whose clusters include one named like contains.
func (c *adsClient) clusterWeights(contains string) map[string]uint32 {
	for _, rc := range c.routeConfigs() {
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				wc := r.GetRoute().GetWeightedClusters()
				if wc == nil {
					continue
				}
				out := map[string]uint32{}
				found := false
				for _, cw := range wc.GetClusters() {
					out[cw.GetName()] = cw.GetWeight().GetValue()
					if strings.Contains(cw.GetName(), contains) {
						found = true
					}
				}
				if found {
					return out
				}
			}
		}
	}
	return nil
}
