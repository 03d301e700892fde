package sidecar

import (
	"context"
	"fmt"
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
	client   *apiclient.Client
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
	c, err := cpAuth.apiClient(cfg.Server)
	if err != nil {
		return nil, &ConfigError{err}
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
		client: c, id: id, instance: inst, ttl: ttl, proxy: p,
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
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := r.client.Register(rctx, r.id.Mesh, r.id.Name, r.instance, r.body)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.log("instance registration failed; retrying:", err)
			wait = time.Second
			continue
		}
		wait = r.ttl / 3
	}
}

func (r *registration) deregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = r.client.Deregister(ctx, r.id.Mesh, r.id.Name, r.instance)
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
