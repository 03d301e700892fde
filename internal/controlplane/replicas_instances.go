package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"github.com/meshlens/meshlens/internal/console"
)

// peerInstances asks every live peer for the instances its proxies
// report (GET /v1/console/instances?scope=local, with r's query and
// Authorization) for the console's whole-mesh instances view. A peer
// that does not answer is named in unreachable, not an error; only
// failing to list the replicas is.
func (s *Server) peerInstances(r *http.Request) (lists [][]console.Instance, unreachable []string, err error) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*peerTimeout)
	defer cancel()
	peers, err := s.cluster.peers(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list the replicas: %w", err)
	}
	query := r.URL.Query()
	authorization := r.Header.Get("Authorization")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range peers {
		if p.ID == s.cluster.self.ID {
			continue
		}
		wg.Go(func() {
			items, err := s.fetchInstances(ctx, p, query, authorization)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.Warn("list a replica's instances", "replica", p.ID, "err", err)
				unreachable = append(unreachable, p.ID)
				return
			}
			lists = append(lists, items)
		})
	}
	wg.Wait()
	sort.Strings(unreachable)
	return lists, unreachable, nil
}

// fetchInstances asks replica p for the instances its own proxies
// report.
func (s *Server) fetchInstances(ctx context.Context, p peerInfo, query map[string][]string, authorization string) ([]console.Instance, error) {
	b, err := s.fetchPeer(ctx, p, "/v1/console/instances", query, authorization)
	if err != nil {
		return nil, err
	}
	var resp console.InstancesResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, fmt.Errorf("%s: decode: %w", p.API, err)
	}
	return resp.Instances, nil
}
