package tracestore

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// response is the envelope of every answer of Jaeger's query API.
type response struct {
	Data   any          `json:"data"`
	Total  int          `json:"total"`
	Limit  int          `json:"limit"`
	Offset int          `json:"offset"`
	Errors []queryError `json:"errors"`
}

type queryError struct {
	Code    int    `json:"code,omitempty"`
	Msg     string `json:"msg"`
	TraceID string `json:"traceID,omitempty"`
}

// RegisterOTLP mounts OTLP/HTTP's POST /v1/traces on mux.
func (s *Store) RegisterOTLP(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/traces", s.handleOTLP)
}

// RegisterQuery mounts Jaeger's query API on mux under /api, at the
// paths Jaeger's query service uses, so that a Jaeger data source's URL
// is the mux's address.
func (s *Store) RegisterQuery(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/services", s.handleServices)
	mux.HandleFunc("GET /api/services/{service}/operations", s.handleOperationNames)
	mux.HandleFunc("GET /api/operations", s.handleOperations)
	mux.HandleFunc("GET /api/traces", s.handleSearch)
	mux.HandleFunc("GET /api/traces/{traceID}", s.handleTrace)
	mux.HandleFunc("GET /api/dependencies", s.handleDependencies)
}

// handleDependencies is Jaeger's service graph: endTs (ms since the
// epoch, default now) and lookback (ms, default 24h) bound the spans
// that count.
func (s *Store) handleDependencies(w http.ResponseWriter, r *http.Request) {
	end, lookback := s.opts.Now(), 24*time.Hour
	if v := r.URL.Query().Get("endTs"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unable to parse param 'endTs': want milliseconds since the epoch, not %q", v))
			return
		}
		end = time.UnixMilli(ms)
	}
	if v := r.URL.Query().Get("lookback"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unable to parse param 'lookback': want a positive number of milliseconds, not %q", v))
			return
		}
		lookback = time.Duration(ms) * time.Millisecond
	}
	writeJSON(w, http.StatusOK, response{Data: s.Dependencies(end.Add(-lookback), end)})
}

func (s *Store) handleServices(w http.ResponseWriter, _ *http.Request) {
	svcs := s.Services()
	writeJSON(w, http.StatusOK, response{Data: svcs, Total: len(svcs)})
}

// handleOperationNames is Jaeger's legacy operations list: the names of
// every kind.
func (s *Store) handleOperationNames(w http.ResponseWriter, r *http.Request) {
	names := []string{}
	for _, op := range s.Operations(r.PathValue("service"), "") {
		if len(names) == 0 || names[len(names)-1] != op.Name {
			names = append(names, op.Name)
		}
	}
	writeJSON(w, http.StatusOK, response{Data: names, Total: len(names)})
}

func (s *Store) handleOperations(w http.ResponseWriter, r *http.Request) {
	svc := r.URL.Query().Get("service")
	if svc == "" {
		writeError(w, http.StatusBadRequest, "parameter 'service' is required")
		return
	}
	ops := s.Operations(svc, r.URL.Query().Get("spanKind"))
	writeJSON(w, http.StatusOK, response{Data: ops, Total: len(ops)})
}

func (s *Store) handleSearch(w http.ResponseWriter, r *http.Request) {
	q, ids, err := ParseQuery(r.URL.Query(), s.opts.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(ids) > 0 {
		traces := []*Trace{}
		var errs []queryError
		for _, id := range ids {
			if t := s.Trace(id); t != nil {
				traces = append(traces, t)
			} else {
				errs = append(errs, queryError{Msg: "trace not found", TraceID: id.String()})
			}
		}
		writeJSON(w, http.StatusOK, response{Data: traces, Errors: errs})
		return
	}
	writeJSON(w, http.StatusOK, response{Data: s.Find(q)})
}

func (s *Store) handleTrace(w http.ResponseWriter, r *http.Request) {
	id, err := parseTraceID(r.PathValue("traceID"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "traceID "+strings.TrimPrefix(err.Error(), "trace id "))
		return
	}
	t := s.Trace(id)
	if t == nil {
		writeError(w, http.StatusNotFound, "trace not found")
		return
	}
	writeJSON(w, http.StatusOK, response{Data: []*Trace{t}})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, response{Errors: []queryError{{Code: status, Msg: msg}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
