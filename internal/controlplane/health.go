package controlplane

import (
	"context"
	"net/http"
	"time"

	"github.com/meshlens/meshlens/internal/store"
)

// healthReport is GET /healthz: whether this replica can serve, the store
// it keeps resources in and, with a shared store, the replicas it knows.
type healthReport struct {
	Status   string      `json:"status"`
	Revision uint64      `json:"revision"`
	Store    storeHealth `json:"store"`
	// Replica, Leader and Peers: with replicas sharing an etcd store,
	// this one's id, whether it leads, and every live replica.
	Replica    string     `json:"replica,omitempty"`
	Leader     bool       `json:"leader,omitempty"`
	Peers      []peerInfo `json:"peers,omitempty"`
	PeersError string     `json:"peersError,omitempty"`
}

type storeHealth struct {
	Kind      string   `json:"kind"` // bolt or etcd
	Endpoints []string `json:"endpoints,omitempty"`
	OK        bool     `json:"ok"`
	Error     string   `json:"error,omitempty"`
}

// healthStoreTimeout bounds the store probe of /healthz.
const healthStoreTimeout = 2 * time.Second

// handleHealthz answers 200 when the store answers a linearizable read,
// 503 otherwise (a replica cut off from its etcd quorum still serves its
// last state over xDS, but must not take writes or be sent traffic by a
// load balancer).
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	rep := healthReport{Status: "ok", Store: storeHealth{Kind: "bolt", OK: true}}
	ctx, cancel := context.WithTimeout(r.Context(), healthStoreTimeout)
	defer cancel()
	snap, err := s.store.Current(ctx)
	if e, ok := s.store.(*store.Etcd); ok {
		rep.Store.Kind = "etcd"
		rep.Store.Endpoints = e.Client().Endpoints()
	}
	if err != nil {
		rep.Status, rep.Store.OK, rep.Store.Error = "store unavailable", false, err.Error()
		snap = s.store.Snapshot()
	}
	rep.Revision = snap.Revision()
	if s.cluster != nil {
		rep.Replica, rep.Leader = s.cluster.self.ID, s.cluster.isLeader()
		if rep.Peers, err = s.cluster.peers(ctx); err != nil {
			rep.PeersError = err.Error()
		}
	}
	status := http.StatusOK
	if !rep.Store.OK {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rep)
}
