package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/meshlens/meshlens/internal/metricshistory"
)

// Each replica's metrics history holds what the proxies holding a stream
// on it sent, so the console's traffic views (graph, metrics, top) read
// it through wholeMeshTraffic: this replica's counts and every live
// peer's (GET /v1/console/history/stats and /range, which answer for
// their own history) are summed, then rates and quantiles computed from
// the sums. Quantiles are computed from the summed histograms, never
// averaged.

// wholeMeshTraffic is the console's Reader with replicas sharing a store.
type wholeMeshTraffic struct{ s *Server }

type authorizationKey struct{}

// withAuthorization keeps the caller's Authorization in the request's
// context, for the calls to peers it leads to.
func withAuthorization(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			r = r.WithContext(context.WithValue(r.Context(), authorizationKey{}, a))
		}
		next.ServeHTTP(w, r)
	})
}

func authorizationFrom(ctx context.Context) string {
	a, _ := ctx.Value(authorizationKey{}).(string)
	return a
}

// Stats implements metricshistory.Reader.
func (m wholeMeshTraffic) Stats(ctx context.Context, q metricshistory.Query) ([]metricshistory.Stat, error) {
	if q.At.IsZero() {
		q.At = time.Now()
	}
	local, err := m.s.history.Counts(q)
	if err != nil {
		return nil, err
	}
	parts := []*metricshistory.Partial{local}
	for _, b := range m.s.askPeers(ctx, "/v1/console/history/stats", q.Values(q.At)) {
		var p metricshistory.Partial
		if err := json.Unmarshal(b.body, &p); err != nil {
			m.s.log.Warn("decode a replica's metrics history", "replica", b.peer, "err", err)
			continue
		}
		if p.Seconds != local.Seconds {
			m.s.log.Warn("a replica's metrics history has another resolution: left out", "replica", b.peer, "seconds", p.Seconds, "want", local.Seconds)
			continue
		}
		parts = append(parts, &p)
	}
	return metricshistory.Merge(parts)
}

// Range implements metricshistory.Reader.
func (m wholeMeshTraffic) Range(ctx context.Context, q metricshistory.RangeQuery) ([]metricshistory.Series, error) {
	local, err := m.s.history.RangeCounts(q)
	if err != nil {
		return nil, err
	}
	parts := []*metricshistory.RangePartial{local}
	for _, b := range m.s.askPeers(ctx, "/v1/console/history/range", q.Values()) {
		var p metricshistory.RangePartial
		if err := json.Unmarshal(b.body, &p); err != nil {
			m.s.log.Warn("decode a replica's metrics history", "replica", b.peer, "err", err)
			continue
		}
		if p.StepSeconds != local.StepSeconds {
			m.s.log.Warn("a replica's metrics history has another resolution: left out", "replica", b.peer, "seconds", p.StepSeconds, "want", local.StepSeconds)
			continue
		}
		parts = append(parts, &p)
	}
	return metricshistory.MergeRange(parts)
}

// peerAnswer is one peer's body.
type peerAnswer struct {
	peer string
	body []byte
}

// askPeers GETs path?query from every live peer at once, with the
// caller's Authorization from ctx, and returns the answers of those that
// answered 200; the others are logged and left out.
func (s *Server) askPeers(ctx context.Context, path string, query url.Values) []peerAnswer {
	ctx, cancel := context.WithTimeout(ctx, 2*peerTimeout)
	defer cancel()
	peers, err := s.cluster.peers(ctx)
	if err != nil {
		s.log.Warn("list the replicas", "err", err)
		return nil
	}
	var out []peerAnswer
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range peers {
		if p.ID == s.cluster.self.ID {
			continue
		}
		wg.Go(func() {
			b, err := s.fetchPeer(ctx, p, path, query, authorizationFrom(ctx))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.Warn("ask a replica", "replica", p.ID, "path", path, "err", err)
				return
			}
			out = append(out, peerAnswer{peer: p.ID, body: b})
		})
	}
	wg.Wait()
	return out
}

// handleHistoryStats answers a peer's query with this replica's counts.
func (s *Server) handleHistoryStats(w http.ResponseWriter, r *http.Request) {
	q, err := metricshistory.ParseQuery(r.URL.Query())
	if err != nil {
		writeError(w, badRequest(fmt.Errorf("query: %w", err)))
		return
	}
	p, err := s.history.Counts(q)
	if err != nil {
		writeError(w, badRequest(err))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// handleHistoryRange answers a peer's range query with this replica's
// counts.
func (s *Server) handleHistoryRange(w http.ResponseWriter, r *http.Request) {
	q, err := metricshistory.ParseRangeQuery(r.URL.Query())
	if err != nil {
		writeError(w, badRequest(fmt.Errorf("query: %w", err)))
		return
	}
	p, err := s.history.RangeCounts(q)
	if err != nil {
		writeError(w, badRequest(err))
		return
	}
	writeJSON(w, http.StatusOK, p)
}
