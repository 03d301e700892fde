package controlplane

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
)

// selfPeer is how the other replicas find this one.
func (s *Server) selfPeer() peerInfo {
	api := s.cfg.AdvertiseAPIAddr
	if api == "" {
		api = advertise(s.APIAddr())
	}
	id := s.cfg.ReplicaID
	if id == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(s.APIAddr())
		id = host + ":" + port
	}
	scheme := "http"
	if s.cfg.APITLS != nil {
		scheme = "https"
	}
	return peerInfo{ID: id, API: api, Scheme: scheme, XDS: advertise(s.XDSAddr()), Started: time.Now().UTC()}
}

// advertise turns a listener's address into one another host can dial: a
// wildcard host becomes the hostname.
func advertise(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			return net.JoinHostPort(h, port)
		}
	}
	return addr
}

// dnsKey holds the leader's DNS answers for every replica.
func (s *Server) dnsKey() string { return s.cluster.prefix + "dns" }

// publishDNS writes the leader's DNS answers for the other replicas; a
// replica that is not the leader publishes nothing.
func (s *Server) publishDNS(hosts map[string][]string) {
	if !s.cluster.isLeader() {
		return
	}
	b, err := json.Marshal(hosts)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.cluster.client.Put(ctx, s.dnsKey(), string(b)); err != nil {
		s.log.Warn("publish dns answers", "err", err)
	}
}

// followDNS keeps this replica's DNS answers equal to the leader's until
// ctx ends.
func (s *Server) followDNS(ctx context.Context) {
	c := s.cluster.client
	for ctx.Err() == nil {
		resp, err := c.Get(ctx, s.dnsKey())
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
				continue
			}
		}
		if len(resp.Kvs) == 1 {
			s.takeDNS(resp.Kvs[0].Value)
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range c.Watch(wctx, s.dnsKey(), clientv3.WithRev(resp.Header.Revision+1)) {
			if wr.Err() != nil || wr.CompactRevision != 0 {
				break
			}
			for _, ev := range wr.Events {
				if ev.Kv != nil && len(ev.Kv.Value) > 0 {
					s.takeDNS(ev.Kv.Value)
				}
			}
		}
		cancel()
	}
}

func (s *Server) takeDNS(b []byte) {
	var hosts map[string][]string
	if err := json.Unmarshal(b, &hosts); err != nil {
		s.log.Warn("undecodable dns answers from the leader", "err", err)
		return
	}
	s.dns.setAll(hosts)
}

// peerTimeout bounds one call to another replica.
const peerTimeout = 2 * time.Second

// newPeerClient is the client of calls to other replicas: https ones
// verified with tlsCfg's roots (the system's when it has none).
func newPeerClient(tlsCfg *tls.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tlsCfg != nil {
		tr.TLSClientConfig = tlsCfg.Clone()
	} else {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Timeout: peerTimeout, Transport: tr}
}

// url is path (with its query) on p's API.
func (p peerInfo) url(pathQuery string) string {
	scheme := p.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + p.API + pathQuery
}

// handleProxies lists the proxies connected to this replica or, with
// replicas sharing a store, to every replica: the others are asked for
// theirs (?scope=local) and each proxy names the replica holding it.
func (s *Server) handleProxies(w http.ResponseWriter, r *http.Request) {
	local := s.proxies("", "", "")
	if s.cluster == nil {
		writeJSON(w, http.StatusOK, restv1.ProxyList{Items: local})
		return
	}
	for i := range local {
		local[i].Replica = s.cluster.self.ID
	}
	if r.URL.Query().Get("scope") == "local" {
		writeJSON(w, http.StatusOK, restv1.ProxyList{Items: local})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*peerTimeout)
	defer cancel()
	peers, err := s.cluster.peers(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	out := restv1.ProxyList{Items: local}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range peers {
		if p.ID == s.cluster.self.ID {
			continue
		}
		wg.Go(func() {
			items, err := s.fetchProxies(ctx, p, r.Header.Get("Authorization"))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.Warn("list a replica's proxies", "replica", p.ID, "err", err)
				out.UnreachableReplicas = append(out.UnreachableReplicas, p.ID)
				return
			}
			out.Items = append(out.Items, items...)
		})
	}
	wg.Wait()
	sort.Slice(out.Items, func(i, j int) bool {
		if out.Items[i].ID != out.Items[j].ID {
			return out.Items[i].ID < out.Items[j].ID
		}
		return out.Items[i].Replica < out.Items[j].Replica
	})
	sort.Strings(out.UnreachableReplicas)
	writeJSON(w, http.StatusOK, out)
}

// maxPeerBody bounds what one replica's answer may hold.
const maxPeerBody = 64 << 20

// fetchProxies asks replica p for its proxies with the caller's
// Authorization (replicas share the token file), so a replica asks
// another only what its caller may read.
func (s *Server) fetchProxies(ctx context.Context, p peerInfo, authorization string) ([]restv1.Proxy, error) {
	b, err := s.fetchPeer(ctx, p, "/v1/proxies", nil, authorization)
	if err != nil {
		return nil, err
	}
	var list restv1.ProxyList
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("%s: decode: %w", p.API, err)
	}
	return list.Items, nil
}
