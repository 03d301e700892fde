package controlplane

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// resolver keeps the addresses of the hostnames that virtual nodes with
// dns service discovery name, re-resolving them periodically, and at once
// when a hostname appears. A failed lookup keeps the last good answer: a
// resolver hiccup must not empty a cluster.
type resolver struct {
	log      *slog.Logger
	interval time.Duration
	timeout  time.Duration
	lookup   func(ctx context.Context, host string) ([]string, error)

	// onChange, when set, is handed the answers after every resolve
	// that changed them: a leader publishes them to the replicas.
	onChange func(map[string][]string)

	mu      sync.Mutex
	hosts   map[string][]string
	changed chan struct{}
	kick    chan struct{}
}

func newResolver(log *slog.Logger, interval time.Duration, r Resolver) *resolver {
	if r == nil {
		r = net.DefaultResolver
	}
	return &resolver{
		log: log, interval: interval, timeout: 2 * time.Second,
		lookup:  r.LookupHost,
		hosts:   map[string][]string{},
		changed: make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
	}
}

// Kick asks Run to resolve the hostnames it has no answer for now,
// without waiting for the next interval.
func (r *resolver) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Snapshot returns a copy of the current answers.
func (r *resolver) Snapshot() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]string, len(r.hosts))
	for h, a := range r.hosts {
		out[h] = a
	}
	return out
}

// Changed signals (coalesced) that some answer changed.
func (r *resolver) Changed() <-chan struct{} { return r.changed }

// hostnames lists the dns hostnames named by virtual nodes in l.
func hostnames(l v1alpha1.Lookup) []string {
	seen := map[string]bool{}
	for _, n := range l.List(v1alpha1.KindVirtualNode, "", "") {
		if s := n.VirtualNodeSpec; s != nil && s.ServiceDiscovery != nil && s.ServiceDiscovery.DNS != nil {
			seen[s.ServiceDiscovery.DNS.Hostname] = true
		}
	}
	out := make([]string, 0, len(seen))
	for h := range seen {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// Resolve looks up every host now and drops answers for hosts no longer
// named.
func (r *resolver) Resolve(ctx context.Context, hosts []string) { r.resolve(ctx, hosts, false) }

// resolve looks up hosts (only those without an answer when onlyNew) and
// drops answers for hosts no longer named.
func (r *resolver) resolve(ctx context.Context, hosts []string, onlyNew bool) {
	fresh := make(map[string][]string, len(hosts))
	for _, h := range hosts {
		if onlyNew {
			r.mu.Lock()
			old, ok := r.hosts[h]
			r.mu.Unlock()
			if ok {
				fresh[h] = old
				continue
			}
		}
		lctx, cancel := context.WithTimeout(ctx, r.timeout)
		addrs, err := r.lookup(lctx, h)
		cancel()
		if err != nil {
			r.mu.Lock()
			old, ok := r.hosts[h]
			r.mu.Unlock()
			r.log.Warn("dns service discovery lookup failed; keeping the last answer", "hostname", h, "error", err, "kept", len(old))
			if ok {
				fresh[h] = old
			}
			continue
		}
		sort.Strings(addrs)
		fresh[h] = addrs
	}
	r.mu.Lock()
	changed := len(fresh) != len(r.hosts)
	for h, a := range fresh {
		if !slices.Equal(r.hosts[h], a) {
			changed = true
		}
	}
	r.hosts = fresh
	r.mu.Unlock()
	if changed {
		r.signal()
		if r.onChange != nil {
			r.onChange(fresh)
		}
	}
}

func (r *resolver) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// setAll replaces every answer with those another replica resolved.
func (r *resolver) setAll(hosts map[string][]string) {
	r.mu.Lock()
	changed := len(hosts) != len(r.hosts)
	for h, a := range hosts {
		if !slices.Equal(r.hosts[h], a) {
			changed = true
		}
	}
	r.hosts = hosts
	r.mu.Unlock()
	if changed {
		r.signal()
	}
}

// Run re-resolves the hosts that current() names every interval until ctx
// ends, and resolves the new ones whenever Kick is called.
func (r *resolver) Run(ctx context.Context, current func() []string) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	onlyNew := false
	for {
		r.resolve(ctx, current(), onlyNew)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			onlyNew = false
		case <-r.kick:
			onlyNew = true
		}
	}
}
