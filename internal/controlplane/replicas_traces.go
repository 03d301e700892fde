package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/meshlens/meshlens/internal/tracestore"
)

// jaegerAnswer is the envelope of Jaeger's query API, with its data kept
// raw until the kind of answer is known.
type jaegerAnswer struct {
	Data   json.RawMessage   `json:"data"`
	Total  int               `json:"total"`
	Limit  int               `json:"limit"`
	Offset int               `json:"offset"`
	Errors []json.RawMessage `json:"errors"`
}

// fanOutTraces serves Jaeger's query API (/api/...) for the whole mesh
// when replicas share a store: each replica's trace store holds the spans
// of the proxies connected to it, so a trace that crossed proxies of
// several replicas is split among them. The answer of this replica's
// store is merged with the peers' (asked with ?scope=local): the spans of
// one trace are joined (each span once, processes renumbered), and lists
// of services, operations and dependencies are united.
func (s *Server) fanOutTraces(local http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cluster == nil || r.URL.Query().Get("scope") == "local" {
			local.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		local.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK && rec.Code != http.StatusNotFound {
			copyRecorded(w, rec)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*peerTimeout)
		defer cancel()
		peers, err := s.cluster.peers(ctx)
		if err != nil {
			copyRecorded(w, rec)
			return
		}
		var answers [][]byte
		if rec.Code == http.StatusOK {
			answers = append(answers, rec.Body.Bytes())
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, p := range peers {
			if p.ID == s.cluster.self.ID {
				continue
			}
			wg.Go(func() {
				b, err := s.fetchPeer(ctx, p, r.URL.Path, r.URL.Query(), r.Header.Get("Authorization"))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					s.log.Debug("query a replica's trace store", "replica", p.ID, "err", err)
					return
				}
				answers = append(answers, b)
			})
		}
		wg.Wait()
		if len(answers) == 0 {
			copyRecorded(w, rec) // not found anywhere
			return
		}
		merged, err := mergeJaeger(r.URL.Path, answers)
		if err != nil {
			writeError(w, fmt.Errorf("merge the replicas' traces: %w", err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(merged)
	})
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// fetchPeer GETs path?query&scope=local from a peer with the caller's
// Authorization (replicas share the token file, so a replica asks
// another only what its caller may read).
func (s *Server) fetchPeer(ctx context.Context, p peerInfo, path string, q map[string][]string, authorization string) ([]byte, error) {
	vals := url.Values{}
	for k, v := range q {
		vals[k] = v
	}
	vals.Set("scope", "local")
	u := p.url(path + "?" + vals.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := s.peerHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerBody))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d", u, resp.StatusCode)
	}
	return b, nil
}

// mergeJaeger merges the answers of several trace stores to one query.
func mergeJaeger(path string, answers [][]byte) ([]byte, error) {
	decoded := make([]jaegerAnswer, 0, len(answers))
	for _, b := range answers {
		var a jaegerAnswer
		if err := json.Unmarshal(b, &a); err != nil {
			return nil, err
		}
		decoded = append(decoded, a)
	}
	out := jaegerAnswer{}
	for _, a := range decoded {
		out.Errors = append(out.Errors, a.Errors...)
	}
	var data any
	switch {
	case strings.HasPrefix(path, "/api/traces"):
		traces, err := mergeTraces(decoded)
		if err != nil {
			return nil, err
		}
		data = traces
		// A trace found on one replica is no error on another.
		out.Errors = nil
	case path == "/api/dependencies":
		deps := map[[2]string]*dependency{}
		for _, a := range decoded {
			var ds []dependency
			if err := json.Unmarshal(a.Data, &ds); err != nil {
				return nil, err
			}
			for _, d := range ds {
				k := [2]string{d.Parent, d.Child}
				if deps[k] == nil {
					deps[k] = &dependency{Parent: d.Parent, Child: d.Child}
				}
				deps[k].CallCount += d.CallCount
			}
		}
		list := make([]dependency, 0, len(deps))
		for _, d := range deps {
			list = append(list, *d)
		}
		sort.Slice(list, func(i, j int) bool {
			return list[i].Parent+"\x00"+list[i].Child < list[j].Parent+"\x00"+list[j].Child
		})
		data = list
	default:
		// services, operation names, operations: a union of values.
		seen := map[string]json.RawMessage{}
		for _, a := range decoded {
			var items []json.RawMessage
			if err := json.Unmarshal(a.Data, &items); err != nil {
				return nil, err
			}
			for _, it := range items {
				seen[string(it)] = it
			}
		}
		keys := make([]string, 0, len(seen))
		for k := range seen {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		items := make([]json.RawMessage, 0, len(keys))
		for _, k := range keys {
			items = append(items, seen[k])
		}
		data = items
		out.Total = len(items)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	out.Data = raw
	if out.Errors == nil {
		out.Errors = []json.RawMessage{}
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type dependency struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount int64  `json:"callCount"`
}

// mergeTraces joins the traces of every answer by trace id: each span
// once, and the processes renumbered p1, p2, ... in the merged trace
// (each store numbers its own).
func mergeTraces(answers []jaegerAnswer) ([]*tracestore.Trace, error) {
	byID := map[string]*tracestore.Trace{}
	procIDs := map[string]map[string]string{} // trace -> process JSON -> id
	spans := map[string]map[string]bool{}
	var order []string
	for _, a := range answers {
		var traces []*tracestore.Trace
		if err := json.Unmarshal(a.Data, &traces); err != nil {
			return nil, err
		}
		for _, t := range traces {
			m := byID[t.TraceID]
			if m == nil {
				m = &tracestore.Trace{TraceID: t.TraceID, Processes: map[string]tracestore.Process{}, Spans: []tracestore.Span{}}
				byID[t.TraceID] = m
				procIDs[t.TraceID] = map[string]string{}
				spans[t.TraceID] = map[string]bool{}
				order = append(order, t.TraceID)
			}
			remap := map[string]string{}
			for id, p := range t.Processes {
				key, _ := json.Marshal(p)
				nid, ok := procIDs[t.TraceID][string(key)]
				if !ok {
					nid = fmt.Sprintf("p%d", len(m.Processes)+1)
					procIDs[t.TraceID][string(key)] = nid
					m.Processes[nid] = p
				}
				remap[id] = nid
			}
			for _, sp := range t.Spans {
				if spans[t.TraceID][sp.SpanID] {
					continue
				}
				spans[t.TraceID][sp.SpanID] = true
				sp.ProcessID = remap[sp.ProcessID]
				m.Spans = append(m.Spans, sp)
			}
			m.Warnings = append(m.Warnings, t.Warnings...)
		}
	}
	out := make([]*tracestore.Trace, 0, len(order))
	for _, id := range order {
		t := byID[id]
		sort.SliceStable(t.Spans, func(i, j int) bool { return t.Spans[i].StartTime < t.Spans[j].StartTime })
		out = append(out, t)
	}
	return out, nil
}
