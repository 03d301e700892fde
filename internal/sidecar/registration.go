package sidecar

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/apiclient"
	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/proxy"
	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// registration keeps this sidecar's instance registered with the control
// plane, renewing it before its TTL passes.
type registration struct {
	// clients are the control-plane replicas' APIs (--server may list
	// several, comma-separated); a failed call moves to the next one,
	// so heartbeats go on through a live replica when one dies.
	clients  []*apiclient.Client
	next     int // index of the client in use
	failures int // consecutive failed calls
	id       nodeid.ID
	instance string
	body     restv1.Instance
	ttl      time.Duration
	proxy    *proxy.Proxy
	log      func(msg string, args ...any)
}

func newRegistration(cfg Config, id nodeid.ID, p *proxy.Proxy) (*registration, error) {
	cpAuth, err := authFromConfig(cfg)
	if err != nil {
		return nil, err
	}
	var clients []*apiclient.Client
	for _, u := range strings.Split(cfg.Server, ",") {
		c, err := cpAuth.apiClient(strings.TrimSpace(u))
		if err != nil {
			return nil, &ConfigError{err}
		}
		clients = append(clients, c)
	}
	// The instance is reachable where the inbound listener binds: the
	// --ingress-addr, else the first --listen mapping, else App Mesh's
	// 15000.
	bound := net.JoinHostPort("0.0.0.0", strconv.Itoa(xdsmeta.InboundPort))
	if cfg.IngressAddr != "" && cfg.IngressAddr != proxy.Disabled {
		bound = cfg.IngressAddr
	} else if len(cfg.Listen) > 0 {
		_, bound, _ = strings.Cut(cfg.Listen[0], "=")
	}
	host, portStr, err := net.SplitHostPort(bound)
	if err != nil {
		return nil, configf("inbound address %q: %v", bound, err)
	}
	port, _ := strconv.Atoi(portStr)
	if cfg.registerPort != 0 {
		// Under capture peers call the application's port and the
		// rules redirect them to the inbound listener.
		port = cfg.registerPort
	}
	addr := cfg.Advertise
	if addr == "" {
		addr = host
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			addr = "127.0.0.1"
		}
	}
	inst := cfg.InstanceID
	if inst == "" {
		hn, _ := os.Hostname()
		inst = fmt.Sprintf("%s-%d", hn, os.Getpid())
	}
	ttl := cfg.RegistrationTTL
	if ttl < 3*time.Second {
		ttl = 3 * time.Second
	}
	stderr := cfg.Stderr
	return &registration{
		clients: clients, next: rand.IntN(len(clients)), id: id, instance: inst, ttl: ttl, proxy: p,
		body: restv1.Instance{Address: addr, Port: port, HealthStatus: "HEALTHY", TTLSeconds: int(ttl / time.Second)},
		log:  func(msg string, args ...any) { fmt.Fprintln(stderr, append([]any{msg}, args...)...) },
	}, nil
}

// run registers once the proxy has bound its inbound listener (it is
// configured and can take traffic), then renews until ctx ends.
func (r *registration) run(ctx context.Context) {
	for {
		bound := r.inboundBound()
		if bound != nil {
			if r.body.Port == 0 {
				// Bound to port 0: register the port the kernel picked.
				if ta, ok := bound.(*net.TCPAddr); ok {
					r.body.Port = ta.Port
				}
			}
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = r.renew(ctx)
	}
}

// renew registers (or renews) the instance once through the replica in
// use and returns how long to wait before the next call: a third of the
// TTL after a success; after a failure it moves to the next replica and
// tries it at once, pausing a second only after a whole round failed.
func (r *registration) renew(ctx context.Context) time.Duration {
	rctx, cancel := context.WithTimeout(ctx, r.callTimeout())
	_, err := r.clients[r.next].Register(rctx, r.id.Mesh, r.id.Name, r.instance, r.body)
	cancel()
	if err == nil || ctx.Err() != nil {
		r.failures = 0
		return r.ttl / 3
	}
	r.next = (r.next + 1) % len(r.clients)
	r.failures++
	if r.failures%len(r.clients) == 0 {
		r.log("instance registration failed; retrying:", err)
		return time.Second
	}
	return 0
}

func (r *registration) deregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for i := range r.clients {
		c := r.clients[(r.next+i)%len(r.clients)]
		if err := c.Deregister(ctx, r.id.Mesh, r.id.Name, r.instance); err == nil || ctx.Err() != nil {
			return
		}
	}
}

// callTimeout bounds one registration call: short enough that a dead
// replica leaves time to renew through another before the TTL passes.
func (r *registration) callTimeout() time.Duration {
	return min(5*time.Second, max(r.ttl/6, 500*time.Millisecond))
}

// inboundBound is the address of the inbound listener's first socket,
// nil until it is bound.
func (r *registration) inboundBound() net.Addr {
	for _, l := range r.proxy.Listeners() {
		if xdsmeta.IsInboundListener(l.Listener) {
			return l.Addr
		}
	}
	return nil
}
