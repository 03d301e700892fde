package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	tlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/service/discovery/v3"
	resourcev3 "github.com/meshlens/meshlens/internal/xdsproto/resource"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/meshlens/meshlens/internal/grpctarget"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/xdsproto"
)

// MaxMessageSize bounds a response from the control plane: large enough
// for a mesh of thousands of endpoints, small enough that a broken server
// cannot make the proxy allocate without limit.
const MaxMessageSize = 16 << 20

// Backoff paces reconnections: Initial doubles after every failed attempt
// up to Max, and each delay moves randomly by up to ±Jitter of itself so
// that a fleet of proxies does not reconnect in step.
type Backoff struct {
	Initial time.Duration // default 500ms
	Max     time.Duration // default 30s
	Jitter  float64       // default 0.2
}

// delay is the wait before attempt n (0 = the first retry).
func (b Backoff) delay(n int) time.Duration {
	d := b.Initial
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return time.Duration(float64(d) * (1 + b.Jitter*(2*rand.Float64()-1)))
}

// Config configures a Client.
type Config struct {
	// Server is the control plane's ADS address: host:port, a
	// comma-separated list of the replicas' host:port, or any gRPC
	// target. With several replicas (listed, or several DNS addresses of
	// one name) a broken stream is re-opened on another; see grpctarget.
	Server string
	// Node identifies the proxy; see NewNode.
	Node *corev3.Node
	// Backoff paces reconnections; zero fields take the defaults.
	Backoff Backoff
	// Log receives connection events, ACKs and NACKs; nil discards them.
	Log *slog.Logger
	// DialOptions are added after the client's defaults (plaintext
	// transport, keepalive, 16 MiB messages), so they can override them,
	// for example with TLS credentials.
	DialOptions []grpc.DialOption
	// CompileOptions are passed to table.Compile.
	CompileOptions table.CompileOptions
	// WarmingTimeout applies a set still waiting for route configurations
	// or EDS assignments after this long, with those missing (Envoy's
	// initial_fetch_timeout). Zero waits forever, as App Mesh's Envoy did.
	WarmingTimeout time.Duration
	// OnConnectionChange, when set, is told whenever the stream goes up
	// or down (the data path's control_plane.connected_state), on the
	// client's goroutine.
	OnConnectionChange func(connected bool)
	// OnSecrets, when set, receives every SDS secret the accepted
	// listeners and clusters name, whenever one changes; an error NACKs
	// the response. Secrets do not hold up a snapshot: a TLS context
	// whose secret has not arrived fails its handshakes until it does.
	OnSecrets func(map[string]*tlsv3.Secret) error
	// ExternalSecrets, when set, is told the SDS secret names the
	// accepted listeners and clusters use, instead of their being asked
	// for on the ADS stream: an external SDS server provides them (App
	// Mesh's APPMESH_SDS_SOCKET_PATH, see package sdsclient).
	ExternalSecrets func(names []string)
}

// NewNode builds the node a meshlens proxy presents: id is its identity
// (mesh/<mesh>/virtualNode/<name> or virtualGateway), cluster its service
// cluster name. The user agent tells the control plane this is an Envoy-like
// proxy, not a proxyless gRPC client.
func NewNode(id, cluster, version string) *corev3.Node {
	return &corev3.Node{
		Id:                   id,
		Cluster:              cluster,
		UserAgentName:        "meshlens-proxy",
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: version},
	}
}

// Client is an ADS client. Its methods are safe for concurrent use; Run
// must be called once.
type Client struct {
	cfg   Config
	apply func(*table.Snapshot) error
	log   *slog.Logger

	connected atomic.Bool
	mu        sync.Mutex // guards lastErr and the copy of versions
	lastErr   error
	versions  map[string]string

	// Owned by Run's goroutine.
	accepted resources
	accVer   map[string]string // accepted version_info by type
	received map[string]bool   // a response of the type was accepted
	pending  bool              // the accepted set is incomplete and not applied
}

// New checks cfg and returns a client that will hand every snapshot it
// builds to apply. apply runs on the client's goroutine: it should swap
// the snapshot in and return; an error NACKs the response.
func New(cfg Config, apply func(*table.Snapshot) error) (*Client, error) {
	switch {
	case cfg.Server == "":
		return nil, errors.New("xdsclient: no server address")
	case cfg.Node == nil || cfg.Node.GetId() == "":
		return nil, errors.New("xdsclient: no node id")
	case apply == nil:
		return nil, errors.New("xdsclient: no apply function")
	}
	if cfg.Backoff.Initial <= 0 {
		cfg.Backoff.Initial = 500 * time.Millisecond
	}
	if cfg.Backoff.Max <= 0 {
		cfg.Backoff.Max = 30 * time.Second
	}
	cfg.Backoff.Max = max(cfg.Backoff.Max, cfg.Backoff.Initial)
	if cfg.Backoff.Jitter <= 0 || cfg.Backoff.Jitter >= 1 {
		cfg.Backoff.Jitter = 0.2
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		cfg:      cfg,
		apply:    apply,
		log:      log.With("xds_server", cfg.Server, "node", cfg.Node.GetId()),
		accepted: resources{},
		accVer:   map[string]string{},
		received: map[string]bool{},
	}, nil
}

// Run connects and keeps connecting until ctx ends, then returns nil. It
// returns an error only when cfg cannot work at all.
func Run(ctx context.Context, cfg Config, apply func(*table.Snapshot) error) error {
	c, err := New(cfg, apply)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// Connected reports whether an ADS stream is established: the
// control_plane.connected_state stat.
func (c *Client) Connected() bool { return c.connected.Load() }

// LastError is the last NACK reason, compile or apply error, or stream
// failure; nil until something fails.
func (c *Client) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Versions returns the last accepted version of each type, by type URL.
func (c *Client) Versions() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.versions)
}

func (c *Client) setConnected(up bool) {
	if c.connected.Swap(up) != up && c.cfg.OnConnectionChange != nil {
		c.cfg.OnConnectionChange(up)
	}
}

func (c *Client) setErr(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
}

// Run is the client's loop; see the package doc.
func (c *Client) Run(ctx context.Context) error {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize)),
		// Pings find a dead control plane behind a silent network; the
		// meshlens server permits one every 5s, these are every 30s.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	target, topts, err := grpctarget.Dial(c.cfg.Server)
	if err != nil {
		return fmt.Errorf("xdsclient: %w", err)
	}
	opts = append(opts, topts...)
	conn, err := grpc.NewClient(target, append(opts, c.cfg.DialOptions...)...)
	if err != nil {
		return fmt.Errorf("xdsclient: dial %s: %w", c.cfg.Server, err)
	}
	defer conn.Close()
	var warm warming
	defer warm.stop()
	for attempt := 0; ; attempt++ {
		progressed, err := c.stream(ctx, conn, &warm)
		c.setConnected(false)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			attempt = 0
		}
		c.setErr(fmt.Errorf("ads stream: %w", err))
		d := c.cfg.Backoff.delay(attempt)
		c.log.Warn("xDS stream failed; reconnecting", "err", err, "in", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// warming is the timer that applies an incomplete set after
// Config.WarmingTimeout; it lives across streams.
type warming struct {
	t *time.Timer
	c <-chan time.Time
}

func (w *warming) start(d time.Duration) {
	if d <= 0 || w.t != nil {
		return
	}
	w.t = time.NewTimer(d)
	w.c = w.t.C
}

func (w *warming) stop() {
	if w.t != nil {
		w.t.Stop()
	}
	w.t, w.c = nil, nil
}

// streamState is what one stream knows: the last nonce of each type and
// the resource names last requested.
type streamState struct {
	send  func(*discoveryv3.DiscoveryRequest) error // sets the node on the first request
	nonce map[string]string
	names map[string][]string
	sent  map[string]bool
}

func (s *streamState) request(typeURL, version, nonce string, names []string, detail error) error {
	req := &discoveryv3.DiscoveryRequest{
		TypeUrl:       typeURL,
		VersionInfo:   version,
		ResponseNonce: nonce,
		ResourceNames: names,
	}
	if detail != nil {
		req.ErrorDetail = &rpcstatus.Status{Code: int32(code.Code_INVALID_ARGUMENT), Message: detail.Error()}
	}
	s.sent[typeURL] = true
	s.names[typeURL] = names
	return s.send(req)
}

// stream runs one ADS stream until it fails. progressed reports whether
// it delivered at least one response.
func (c *Client) stream(ctx context.Context, conn grpc.ClientConnInterface, warm *warming) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := xdsproto.NewStream[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse](ctx, conn, xdsproto.MethodStreamAggregatedResources, true)
	if err != nil {
		return false, err
	}
	first := true
	ss := &streamState{
		nonce: map[string]string{}, names: map[string][]string{}, sent: map[string]bool{},
		send: func(req *discoveryv3.DiscoveryRequest) error {
			if first {
				req.Node, first = c.cfg.Node, false
			}
			return st.Send(req)
		},
	}
	// Subscribe: wildcards first, then what the accepted set names, with
	// the versions already accepted.
	names := c.accepted.names()
	for _, typ := range subscribed {
		var want []string
		if !fullState(typ) {
			want = names[typ]
			if len(want) == 0 {
				continue
			}
		}
		if err := ss.request(typ, c.accVer[typ], "", want, nil); err != nil {
			return false, err
		}
	}
	if want := names[resourcev3.SecretType]; c.cfg.ExternalSecrets != nil {
		c.cfg.ExternalSecrets(want)
	} else if len(want) > 0 {
		if err := ss.request(resourcev3.SecretType, c.accVer[resourcev3.SecretType], "", want, nil); err != nil {
			return false, err
		}
	}
	c.setConnected(true)
	c.log.Info("xDS stream established")

	type recv struct {
		resp *discoveryv3.DiscoveryResponse
		err  error
	}
	ch := make(chan recv, 1)
	go func() {
		for {
			resp, err := st.Recv()
			select {
			case ch <- recv{resp, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case <-warm.c:
			warm.stop()
			c.applyIncomplete()
		case r := <-ch:
			if r.err != nil {
				return progressed, r.err
			}
			progressed = true
			if err := c.handle(r.resp, ss, warm); err != nil {
				return progressed, err
			}
		}
	}
}

// handle processes one response and sends its ACK or NACK, then any new
// subscriptions. It returns an error only when sending fails.
func (c *Client) handle(resp *discoveryv3.DiscoveryResponse, ss *streamState, warm *warming) error {
	typ := resp.GetTypeUrl()
	if !slices.Contains(subscribed, typ) && typ != resourcev3.SecretType {
		c.log.Warn("ignoring a response of a type not subscribed", "type", typ)
		return nil
	}
	ss.nonce[typ] = resp.GetNonce()
	log := c.log.With("type", typ, "version", resp.GetVersionInfo(), "nonce", resp.GetNonce())

	nack := func(err error) error {
		c.setErr(fmt.Errorf("rejected %s version %q: %w", typ, resp.GetVersionInfo(), err))
		log.Error("NACK", "err", err)
		return ss.request(typ, c.accVer[typ], resp.GetNonce(), ss.names[typ], err)
	}

	got, err := decode(resp)
	if err != nil {
		return nack(err)
	}
	if typ == resourcev3.SecretType {
		return c.handleSecrets(resp, ss, got, nack)
	}
	if c.received[typ] && sameResources(typ, c.accepted[typ], got) {
		// Nothing changes but perhaps the version (a resend after a
		// reconnect, or a server that versions all types together):
		// accept it without building a snapshot.
		log.Debug("ACK (unchanged)")
		c.accVer[typ] = resp.GetVersionInfo()
		c.mu.Lock()
		c.versions = maps.Clone(c.accVer)
		c.mu.Unlock()
		return ss.request(typ, resp.GetVersionInfo(), resp.GetNonce(), ss.names[typ], nil)
	}

	next, names := c.tentative(typ, got, ss.names[typ])
	received := maps.Clone(c.received)
	received[typ] = true
	versions := maps.Clone(c.accVer)
	versions[typ] = resp.GetVersionInfo()

	ok, missing := next.complete(received, names)
	opts := c.cfg.CompileOptions
	if !ok {
		// Warming: compile only to find errors that waiting will not fix.
		opts.AllowMissing = true
	}
	snap, err := table.Compile(next.tableResources(versions), opts)
	if err != nil {
		return nack(err)
	}
	if ok {
		if err := c.apply(snap); err != nil {
			return nack(fmt.Errorf("apply: %w", err))
		}
		warm.stop()
		log.Info("ACK; applied a new snapshot")
	} else {
		warm.start(c.cfg.WarmingTimeout)
		log.Info("ACK; warming", "waiting_for", missing)
	}

	c.accepted, c.received, c.accVer, c.pending = next, received, versions, !ok
	c.mu.Lock()
	c.versions = maps.Clone(versions)
	c.mu.Unlock()
	if err := ss.request(typ, resp.GetVersionInfo(), resp.GetNonce(), subscriptionFor(typ, names), nil); err != nil {
		return err
	}
	return c.follow(ss, typ, names)
}

// tentative is the resource set a response of type typ would make: got
// (what of it was asked for, in want) over what is accepted, with the
// RDS and EDS resources outside the subscriptions it implies dropped; it
// also returns those subscriptions.
func (c *Client) tentative(typ string, got map[string]xdsproto.Message, want []string) (resources, map[string][]string) {
	next := c.accepted.clone()
	if fullState(typ) || next[typ] == nil {
		next[typ] = map[string]xdsproto.Message{}
	}
	for n, m := range got {
		if !fullState(typ) && !slices.Contains(want, n) {
			continue // not asked for (any more)
		}
		next[typ][n] = m
	}
	names := next.names()
	next.prune(names)
	return next, names
}

// follow updates the RDS and EDS subscriptions a response of type typ
// changed: names are the resources the accepted set now references.
func (c *Client) follow(ss *streamState, typ string, names map[string][]string) error {
	for _, t := range []string{resourcev3.RouteType, resourcev3.EndpointType, resourcev3.SecretType} {
		if t == resourcev3.SecretType && c.cfg.ExternalSecrets != nil {
			if !slices.Equal(names[t], ss.names[t]) {
				ss.names[t] = names[t]
				c.cfg.ExternalSecrets(names[t])
			}
			continue
		}
		if t == typ || slices.Equal(names[t], ss.names[t]) || (!ss.sent[t] && len(names[t]) == 0) {
			continue
		}
		if err := ss.request(t, c.accVer[t], ss.nonce[t], names[t], nil); err != nil {
			return err
		}
	}
	return nil
}

// subscriptionFor is the resource_names to send with an ACK of typ.
func subscriptionFor(typ string, names map[string][]string) []string {
	if fullState(typ) {
		return nil
	}
	return names[typ]
}

// applyIncomplete applies the accepted set with its missing references,
// after Config.WarmingTimeout.
func (c *Client) applyIncomplete() {
	if !c.pending {
		return
	}
	opts := c.cfg.CompileOptions
	opts.AllowMissing = true
	_, missing := c.accepted.complete(c.received, c.accepted.names())
	snap, err := table.Compile(c.accepted.tableResources(c.accVer), opts)
	if err == nil {
		err = c.apply(snap)
	}
	if err != nil {
		c.setErr(fmt.Errorf("warming timed out, and the incomplete set does not apply: %w", err))
		c.log.Error("warming timed out; not applied", "err", err)
		return
	}
	c.pending = false
	c.log.Warn("warming timed out; applied without what is missing", "missing", missing)
}

// handleSecrets accepts an SDS response: the secrets asked for replace
// those held, go to Config.OnSecrets, and are ACKed. No snapshot is
// built: listeners and clusters read their secrets at every handshake.
func (c *Client) handleSecrets(resp *discoveryv3.DiscoveryResponse, ss *streamState, got map[string]xdsproto.Message, nack func(error) error) error {
	typ := resourcev3.SecretType
	next := c.accepted.clone()
	if next[typ] == nil {
		next[typ] = map[string]xdsproto.Message{}
	}
	for n, m := range got {
		if slices.Contains(ss.names[typ], n) {
			next[typ][n] = m
		}
	}
	if c.cfg.OnSecrets != nil {
		if err := c.cfg.OnSecrets(next.secretsOf()); err != nil {
			return nack(err)
		}
	}
	c.accepted = next
	if c.received == nil {
		c.received = map[string]bool{}
	}
	c.received[typ] = true
	c.accVer[typ] = resp.GetVersionInfo()
	c.mu.Lock()
	c.versions = maps.Clone(c.accVer)
	c.mu.Unlock()
	c.log.Info("ACK; secrets updated", "version", resp.GetVersionInfo(), "secrets", len(next[typ]))
	return ss.request(typ, resp.GetVersionInfo(), resp.GetNonce(), ss.names[typ], nil)
}
