// Package xdssim measures the control plane at scale: it loads a mesh of
// many virtual services and registered endpoints through the REST API,
// opens N concurrent ADS streams as distinct sidecars (each subscribing
// and ACKing as Envoy does: CDS and LDS wildcard, then EDS and RDS by the
// names those name), applies a route change and an endpoint change that
// every sidecar sees, and times how long each stream takes to ACK the new
// configuration.
package xdssim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	typeCDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeLDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeEDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	typeHCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

	meshName = "scale"
	// The route change moves the shared service's split to these weights;
	// the endpoint change registers an instance at this address. Both are
	// what a stream looks for to know it has the new configuration.
	newWeightA, newWeightB = 37, 63
	newEndpointAddr        = "127.2.0.1"
)

// Config sizes one simulation.
type Config struct {
	// APIURL is where the mesh is loaded and changed. XDSAddr is the
	// control plane's xDS address, or several replicas' addresses
	// comma-separated: stream i then connects to replica i mod n, so a
	// change made through one replica reaches streams of every replica.
	APIURL, XDSAddr string
	// ChunkResources, when set, loads the mesh in batches of at most this
	// many resources (an etcd store takes at most 127 per transaction),
	// in an order that keeps every reference resolvable.
	ChunkResources int
	// Usage reads the control plane process's CPU time and RSS.
	Usage func() (cpu time.Duration, rssBytes int64, err error)
	// Services is the number of virtual services (each with its own
	// router, route and virtual node); Endpoints per node are registered.
	Services, EndpointsPerNode, Backends int
	// Streams is N, the number of sidecars; sidecar i is an instance of
	// virtual node i mod Services.
	Streams int
	Timeout time.Duration
	// AroundChange, when set, is called before each change with its name
	// ("route" or "endpoint"); the function it returns is called once
	// every stream converged (to take profiles of exactly that window).
	AroundChange func(name string) (done func())
}

// Convergence is how long the streams took to ACK one change.
type Convergence struct {
	Converged int     `json:"converged"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	Max       float64 `json:"max_ms"`
	// ServerCPU is the control plane's CPU seconds from the change until
	// the last ACK.
	ServerCPU float64 `json:"server_cpu_s"`
	// ServerAllocMB and ServerGCs are what the control plane allocated
	// (less what reading its /metrics allocates) and how many garbage
	// collections it ran over the same interval (from its /metrics):
	// unlike CPU time, they do not grow with the machine's load.
	ServerAllocMB float64 `json:"server_alloc_mb,omitempty"`
	ServerGCs     float64 `json:"server_gcs,omitempty"`
}

// Result is one simulation.
type Result struct {
	Streams          int         `json:"streams"`
	Services         int         `json:"services"`
	Endpoints        int         `json:"endpoints"`
	ApplySeconds     float64     `json:"apply_s"`
	RegisterSeconds  float64     `json:"register_s"`
	ConnectSeconds   float64     `json:"connect_s"`
	ConnectServerCPU float64     `json:"connect_server_cpu_s"`
	RSSLoadedMB      float64     `json:"rss_loaded_mb"`    // mesh loaded, no stream
	RSSConnectedMB   float64     `json:"rss_connected_mb"` // every stream configured
	RSSPeakMB        float64     `json:"rss_peak_mb"`
	Route            Convergence `json:"route_change"`
	Endpoint         Convergence `json:"endpoint_change"`
	// With replicas on an etcd store (meshbench -xds-replicas): how
	// many, and the RSS of each replica and each etcd member once every
	// stream converged on both changes; the RSS and CPU figures above are
	// then the replicas' sums.
	Replicas     int       `json:"replicas,omitempty"`
	ReplicaRSSMB []float64 `json:"replica_rss_mb,omitempty"`
	EtcdRSSMB    []float64 `json:"etcd_rss_mb,omitempty"`
}

// Load applies the mesh and registers the endpoints through the REST API.
// It is done once per control plane.
func Load(ctx context.Context, cfg Config, res *Result) error {
	start := time.Now()
	if cfg.ChunkResources > 0 {
		for _, docs := range meshChunks(cfg.Services, cfg.Backends, 90, 10, cfg.ChunkResources) {
			if err := apply(ctx, cfg.APIURL, docs); err != nil {
				return err
			}
		}
	} else if err := apply(ctx, cfg.APIURL, meshDocs(cfg.Services, cfg.Backends, 90, 10)); err != nil {
		return err
	}
	res.ApplySeconds = time.Since(start).Seconds()
	start = time.Now()
	if err := registerAll(ctx, cfg); err != nil {
		return err
	}
	res.RegisterSeconds = time.Since(start).Seconds()
	res.Services = cfg.Services
	res.Endpoints = cfg.Services * cfg.EndpointsPerNode
	return nil
}

func nodeName(i int) string    { return fmt.Sprintf("n-%d", i) }
func serviceName(i int) string { return fmt.Sprintf("svc-%d.%s.local", i, meshName) }

// sharedRoute is the route of service 0, which every node calls (as every
// service of a real mesh calls its auth or config service).
func routeDoc(i, services, wa, wb int) string {
	return fmt.Sprintf("---\nkind: Route\nmesh: %s\nvirtualRouter: r-%d\nname: rt-%d\nspec:\n  httpRoute:\n    match: {prefix: /}\n    action:\n      weightedTargets:\n        - {virtualNode: %s, weight: %d}\n        - {virtualNode: %s, weight: %d}\n",
		meshName, i, i, nodeName(i), wa, nodeName((i+1)%services), wb)
}

func meshDocs(services, backends, wa, wb int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kind: Mesh\nname: %s\nspec:\n  egressFilter: {type: DROP_ALL}\n", meshName)
	for i := 0; i < services; i++ {
		fmt.Fprintf(&b, "---\nkind: VirtualNode\nmesh: %s\nname: %s\nspec:\n  listeners: [{portMapping: {port: 8080, protocol: http}}]\n  serviceDiscovery: {awsCloudMap: {namespaceName: %s.local, serviceName: %s}}\n  backends:\n",
			meshName, nodeName(i), meshName, nodeName(i))
		// Service 0 (node 0 calls it too) and the next backends-1 services.
		seen := map[int]bool{}
		for _, t := range append([]int{0}, seq(i+1, backends)...) {
			t %= services
			if seen[t] {
				continue
			}
			seen[t] = true
			fmt.Fprintf(&b, "    - virtualService: {virtualServiceName: %s}\n", serviceName(t))
		}
		fmt.Fprintf(&b, "---\nkind: VirtualRouter\nmesh: %s\nname: r-%d\nspec:\n  listeners: [{portMapping: {port: 8080, protocol: http}}]\n", meshName, i)
		b.WriteString(routeDoc(i, services, wa, wb))
		fmt.Fprintf(&b, "---\nkind: VirtualService\nmesh: %s\nname: %s\nspec:\n  provider: {virtualRouter: {virtualRouterName: r-%d}}\n", meshName, serviceName(i), i)
	}
	return b.String()
}

// meshChunks is meshDocs split into batches of at most per documents:
// the mesh and every node, then the routers, the routes (which name two
// nodes and a router), and the services (which name a router). A node's
// backends may name services not yet created, as App Mesh allows.
func meshChunks(services, backends, wa, wb, per int) []string {
	docs := strings.Split(meshDocs(services, backends, wa, wb), "---\n")
	rank := func(d string) int {
		switch {
		case strings.HasPrefix(d, "kind: Mesh"):
			return 0
		case strings.HasPrefix(d, "kind: VirtualNode"):
			return 1
		case strings.HasPrefix(d, "kind: VirtualRouter"):
			return 2
		case strings.HasPrefix(d, "kind: Route"):
			return 3
		default:
			return 4
		}
	}
	var byRank [5][]string
	for _, d := range docs {
		if strings.TrimSpace(d) != "" {
			byRank[rank(d)] = append(byRank[rank(d)], d)
		}
	}
	var out []string
	for _, group := range byRank {
		for len(group) > 0 {
			n := min(per, len(group))
			out = append(out, strings.Join(group[:n], "---\n"))
			group = group[n:]
		}
	}
	return out
}

func seq(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

var api = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64, Proxy: nil}}

func apply(ctx context.Context, apiURL, docs string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/v1/apply", strings.NewReader(docs))
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := api.Do(req)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2000))
		return fmt.Errorf("apply: %s: %s", resp.Status, b)
	}
	io.Copy(io.Discard, resp.Body)
	return nil
}

func register(ctx context.Context, apiURL, node, id, addr string) error {
	body, _ := json.Marshal(map[string]any{"address": addr, "port": 8080, "ttlSeconds": 3600})
	req, err := http.NewRequestWithContext(ctx, http.MethodPut,
		fmt.Sprintf("%s/v1/meshes/%s/virtualNodes/%s/instances/%s", apiURL, meshName, node, id), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("register %s/%s: %w", node, id, err)
	}
	resp, err := api.Do(req)
	if err != nil {
		return fmt.Errorf("register %s/%s: %w", node, id, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("register %s/%s: %s", node, id, resp.Status)
	}
	return nil
}

// registerAll registers every endpoint over 32 keep-alive connections.
// The addresses are loopback ones no process listens on: nothing is ever
// sent to them.
func registerAll(ctx context.Context, cfg Config) error {
	type job struct{ node, id, addr string }
	jobs := make(chan job)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Go(func() {
			for j := range jobs {
				if err := register(ctx, cfg.APIURL, j.node, j.id, j.addr); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	n := 0
	for i := 0; i < cfg.Services; i++ {
		for k := 0; k < cfg.EndpointsPerNode; k++ {
			jobs <- job{nodeName(i), fmt.Sprintf("i-%d", k), fmt.Sprintf("127.1.%d.%d", n/250, n%250+1)}
			n++
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// Run opens cfg.Streams streams, waits until each is configured, then
// makes the two changes and measures their convergence.
func Run(ctx context.Context, cfg Config, res *Result) error {
	res.Streams = cfg.Streams
	// The simulated streams allocate for every response they read; a
	// larger heap target keeps the simulator's garbage collection from
	// taking the cores it shares with the control plane under test.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	_, rss, err := cfg.Usage()
	if err != nil {
		return err
	}
	res.RSSLoadedMB = mb(rss)
	peak := rss
	stopPeak := make(chan struct{})
	peakDone := make(chan struct{})
	go func() {
		defer close(peakDone)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			if _, r, err := cfg.Usage(); err == nil {
				peak = max(peak, r)
			}
			select {
			case <-stopPeak:
				return
			case <-t.C:
			}
		}
	}()
	defer func() {
		close(stopPeak)
		<-peakDone
		res.RSSPeakMB = mb(peak)
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cpu0, _, _ := cfg.Usage()
	start := time.Now()
	streams := make([]*stream, cfg.Streams)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var openErr atomic.Pointer[error]
	for i := range streams {
		s := &stream{node: "mesh/" + meshName + "/virtualNode/" + nodeName(i%cfg.Services), ready: make(chan struct{}), subs: map[string][]string{}, last: map[string][2]string{}}
		streams[i] = s
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			addrs := strings.Split(cfg.XDSAddr, ",")
			if err := s.open(ctx, addrs[i%len(addrs)], i); err != nil {
				openErr.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, s := range streams {
			s.close()
		}
	}()
	if p := openErr.Load(); p != nil {
		return fmt.Errorf("open streams: %w", *p)
	}
	deadline := time.After(cfg.Timeout)
	for i, s := range streams {
		select {
		case <-s.ready:
		case <-deadline:
			return fmt.Errorf("stream %d (%s) not configured after %s: %s", i, s.node, cfg.Timeout, s.status())
		}
	}
	res.ConnectSeconds = time.Since(start).Seconds()
	cpu1, rss, _ := cfg.Usage()
	res.ConnectServerCPU = (cpu1 - cpu0).Seconds()
	res.RSSConnectedMB = mb(rss)
	slog.Info("xds streams configured", "streams", cfg.Streams, "seconds", res.ConnectSeconds)

	// Route change: the shared service's split.
	res.Route, err = measure(ctx, cfg, "route", streams, func(s *stream) *atomic.Int64 { return &s.routeAt }, func() error {
		return apply(ctx, cfg.APIURL, routeDoc(0, cfg.Services, newWeightA, newWeightB))
	})
	if err != nil {
		return fmt.Errorf("route change: %w", err)
	}
	// Endpoint change: one more instance of a node every sidecar reaches.
	res.Endpoint, err = measure(ctx, cfg, "endpoint", streams, func(s *stream) *atomic.Int64 { return &s.endpointAt }, func() error {
		return register(ctx, cfg.APIURL, nodeName(0), "i-new", newEndpointAddr)
	})
	if err != nil {
		return fmt.Errorf("endpoint change: %w", err)
	}
	return nil
}

var epoch = time.Now()

func measure(ctx context.Context, cfg Config, name string, streams []*stream, at func(*stream) *atomic.Int64, change func() error) (Convergence, error) {
	var c Convergence
	if cfg.AroundChange != nil {
		done := cfg.AroundChange(name)
		defer done()
	}
	// Reading /metrics allocates too (the control plane lists every
	// stream for it): two reads in a row measure that, and it is taken
	// off the change's figure.
	allocA, _, errA := serverMemStats(ctx, cfg.APIURL)
	alloc0, gcs0, memErr := serverMemStats(ctx, cfg.APIURL)
	scrape := alloc0 - allocA
	cpu0, _, _ := cfg.Usage()
	t0 := time.Now()
	if err := change(); err != nil {
		return c, err
	}
	deadline := time.Now().Add(cfg.Timeout)
	var lat []float64
	for _, s := range streams {
		for at(s).Load() == 0 && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		if v := at(s).Load(); v != 0 {
			lat = append(lat, float64(epoch.Add(time.Duration(v)).Sub(t0))/float64(time.Millisecond))
		}
	}
	cpu1, _, _ := cfg.Usage()
	c.ServerCPU = (cpu1 - cpu0).Seconds()
	if alloc1, gcs1, err := serverMemStats(ctx, cfg.APIURL); err == nil && memErr == nil && errA == nil {
		c.ServerAllocMB, c.ServerGCs = mb(int64(alloc1-alloc0-scrape)), gcs1-gcs0
	}
	c.Converged = len(lat)
	if len(lat) == 0 {
		return c, fmt.Errorf("no stream converged within %s", cfg.Timeout)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return lat[min(len(lat)-1, max(0, int(p*float64(len(lat))+0.5)-1))] }
	c.P50, c.P99, c.Max = q(0.5), q(0.99), lat[len(lat)-1]
	if len(lat) < len(streams) {
		return c, fmt.Errorf("%d of %d streams converged within %s", len(lat), len(streams), cfg.Timeout)
	}
	return c, nil
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// serverMemStats reads the bytes the control plane allocated so far and
// the garbage collections it ran, from its /metrics.
func serverMemStats(ctx context.Context, apiURL string) (alloc, gcs float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var found int
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "go_memstats_alloc_bytes_total":
			dst = &alloc
		case "go_gc_duration_seconds_count":
			dst = &gcs
		default:
			continue
		}
		if *dst, err = strconv.ParseFloat(value, 64); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", name, err)
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("%s/metrics: no Go memory statistics", apiURL)
	}
	return alloc, gcs, nil
}

// stream is one simulated sidecar's ADS stream.
type stream struct {
	node  string
	conn  *grpc.ClientConn
	ads   discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	ready chan struct{}

	// Owned by the receive goroutine.
	subs map[string][]string
	// last is the version and nonce of the last response per type: the
	// responses themselves are dropped once handled, so that the
	// simulator's heap (and its garbage collector's work, on the cores it
	// shares with the control plane) does not grow with 5000 streams'
	// configurations.
	last map[string][2]string
	seen uint8 // bit per type that has answered

	routeAt, endpointAt atomic.Int64 // ns since epoch of the ACK; 0 = not yet
	recvErr             atomic.Pointer[error]
}

// sidecarWindow is internal/grpctarget.Window.
const sidecarWindow = 1 << 20

func (s *stream) open(ctx context.Context, addr string, i int) error {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The windows of the sidecar's control-plane connection
		// (internal/grpctarget.Window): fixed, so that no bandwidth-
		// estimation PING follows each response, as from the sidecar.
		grpc.WithInitialWindowSize(sidecarWindow), grpc.WithInitialConnWindowSize(sidecarWindow))
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	s.conn = conn
	ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("open ADS stream for %s: %w", s.node, err)
	}
	s.ads = ads
	node := &corev3.Node{Id: s.node, Cluster: fmt.Sprintf("sim-%d", i), UserAgentName: "meshlens-xdssim"}
	for _, t := range []string{typeCDS, typeLDS} {
		if err := ads.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: t}); err != nil {
			return fmt.Errorf("subscribe %s: %w", t, err)
		}
	}
	go s.recv()
	return nil
}

func (s *stream) close() {
	if s.conn != nil {
		s.conn.Close()
	}
}

func (s *stream) status() string {
	if p := s.recvErr.Load(); p != nil {
		return (*p).Error()
	}
	return fmt.Sprintf("types answered: %04b", s.seen)
}

const (
	seenCDS = 1 << iota
	seenLDS
	seenRDS
	seenEDS
	seenAll = seenCDS | seenLDS | seenRDS | seenEDS
)

func (s *stream) recv() {
	for {
		resp, err := s.ads.Recv()
		if err != nil {
			s.recvErr.Store(&err)
			return
		}
		if err := s.handle(resp); err != nil {
			s.recvErr.Store(&err)
			return
		}
	}
}

// handle ACKs a response and subscribes to what it names, as Envoy does.
func (s *stream) handle(resp *discoveryv3.DiscoveryResponse) error {
	typ := resp.GetTypeUrl()
	s.last[typ] = [2]string{resp.GetVersionInfo(), resp.GetNonce()}
	var follow string
	var followNames []string
	var marker bool
	switch typ {
	case typeCDS:
		s.seen |= seenCDS
		follow = typeEDS
		for _, r := range resp.GetResources() {
			var c clusterv3.Cluster
			if err := proto.Unmarshal(r.GetValue(), &c); err != nil {
				return fmt.Errorf("decode cluster: %w", err)
			}
			if c.GetType() == clusterv3.Cluster_EDS || c.GetEdsClusterConfig() != nil {
				name := c.GetEdsClusterConfig().GetServiceName()
				if name == "" {
					name = c.GetName()
				}
				followNames = append(followNames, name)
			}
		}
	case typeLDS:
		s.seen |= seenLDS
		follow = typeRDS
		for _, r := range resp.GetResources() {
			var l listenerv3.Listener
			if err := proto.Unmarshal(r.GetValue(), &l); err != nil {
				return fmt.Errorf("decode listener: %w", err)
			}
			chains := append(slices.Clone(l.GetFilterChains()), l.GetDefaultFilterChain())
			for _, fc := range chains {
				for _, f := range fc.GetFilters() {
					if tc := f.GetTypedConfig(); tc != nil && tc.GetTypeUrl() == typeHCM {
						var h hcmv3.HttpConnectionManager
						if err := proto.Unmarshal(tc.GetValue(), &h); err != nil {
							return fmt.Errorf("decode connection manager: %w", err)
						}
						if n := h.GetRds().GetRouteConfigName(); n != "" {
							followNames = append(followNames, n)
						}
					}
				}
			}
		}
	case typeRDS:
		s.seen |= seenRDS
		for _, r := range resp.GetResources() {
			has, err := hasWeights(r.GetValue(), newWeightA, newWeightB)
			if err != nil {
				return fmt.Errorf("decode route configuration: %w", err)
			}
			marker = marker || has
		}
	case typeEDS:
		s.seen |= seenEDS
		for _, r := range resp.GetResources() {
			// The address is a string field: its bytes appear verbatim.
			marker = marker || bytes.Contains(r.GetValue(), []byte(newEndpointAddr))
		}
	}
	ack := &discoveryv3.DiscoveryRequest{TypeUrl: typ, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ResourceNames: s.subs[typ]}
	if err := s.ads.Send(ack); err != nil {
		return fmt.Errorf("ack %s: %w", typ, err)
	}
	now := int64(time.Since(epoch))
	if marker {
		switch typ {
		case typeRDS:
			s.routeAt.CompareAndSwap(0, now)
		case typeEDS:
			s.endpointAt.CompareAndSwap(0, now)
		}
	}
	if follow != "" {
		slices.Sort(followNames)
		followNames = slices.Compact(followNames)
		if !slices.Equal(followNames, s.subs[follow]) {
			s.subs[follow] = followNames
			req := &discoveryv3.DiscoveryRequest{TypeUrl: follow, ResourceNames: followNames}
			if prev, ok := s.last[follow]; ok {
				req.VersionInfo, req.ResponseNonce = prev[0], prev[1]
			}
			if err := s.ads.Send(req); err != nil {
				return fmt.Errorf("subscribe %s: %w", follow, err)
			}
		}
	}
	if s.seen == seenAll {
		select {
		case <-s.ready:
		default:
			close(s.ready)
		}
	}
	return nil
}

// Field numbers on the path from a RouteConfiguration to its routes'
// weights, read from the descriptors.
var (
	fieldVirtualHosts     = fieldNumber(&routev3.RouteConfiguration{}, "virtual_hosts")
	fieldRoutes           = fieldNumber(&routev3.VirtualHost{}, "routes")
	fieldRouteAction      = fieldNumber(&routev3.Route{}, "route")
	fieldWeightedClusters = fieldNumber(&routev3.RouteAction{}, "weighted_clusters")
	fieldClusters         = fieldNumber(&routev3.WeightedCluster{}, "clusters")
	fieldWeight           = fieldNumber(&routev3.WeightedCluster_ClusterWeight{}, "weight")
	fieldValue            = fieldNumber(&wrapperspb.UInt32Value{}, "value")
)

func fieldNumber(m proto.Message, name string) protowire.Number {
	f := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
	if f == nil {
		panic("xdssim: no field " + name)
	}
	return f.Number()
}

// hasWeights reports whether an encoded RouteConfiguration has a route
// split between exactly two weighted clusters of weights a and b, in that
// order. It walks the wire format along the path to the weights only:
// decoding 5000 whole route configurations per change costs the simulator
// CPU that the control plane, sharing its cores, would otherwise get.
func hasWeights(rc []byte, a, b uint32) (bool, error) {
	found := false
	err := eachField(rc, fieldVirtualHosts, func(vh []byte) error {
		return eachField(vh, fieldRoutes, func(r []byte) error {
			return eachField(r, fieldRouteAction, func(ra []byte) error {
				return eachField(ra, fieldWeightedClusters, func(wc []byte) error {
					var got []uint32
					err := eachField(wc, fieldClusters, func(cw []byte) error {
						var w uint32
						err := eachField(cw, fieldWeight, func(v []byte) error {
							return eachVarint(v, fieldValue, func(x uint64) { w = uint32(x) })
						})
						got = append(got, w)
						return err
					})
					if len(got) == 2 && got[0] == a && got[1] == b {
						found = true
					}
					return err
				})
			})
		})
	})
	return found, err
}

// eachField calls fn with the bytes of every length-delimited field num
// of the message b, skipping the other fields.
func eachField(b []byte, num protowire.Number, fn func([]byte) error) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return protowire.ParseError(l)
			}
			if err := fn(v); err != nil {
				return err
			}
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
	}
	return nil
}

// eachVarint calls fn with every varint field num of the message b.
func eachVarint(b []byte, num protowire.Number, fn func(uint64)) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if n == num && typ == protowire.VarintType {
			v, l := protowire.ConsumeVarint(b)
			if l < 0 {
				return protowire.ParseError(l)
			}
			fn(v)
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
	}
	return nil
}
