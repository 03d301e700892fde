package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/tap"
	"github.com/meshlens/meshlens/internal/tapwire"
)

// handleTap streams a sample of the proxy's live requests as
// newline-delimited JSON (tap.Event per line) until max events were sent,
// the duration ends or the client goes (GET /tap?path_prefix=&method=
// &authority=&show_headers=&max=&duration=).
func (p *Proxy) handleTap(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, fmt.Sprintf("Method %s not allowed, GET required.", r.Method), http.StatusMethodNotAllowed)
		return
	}
	params, err := tapwire.ParseParams(r.URL.Query())
	if err != nil {
		http.Error(w, "tap: "+err.Error(), http.StatusBadRequest)
		return
	}
	t, err := tap.Open(params.Filter)
	if errors.Is(err, tap.ErrTooManyTaps) {
		http.Error(w, fmt.Sprintf("tap: %v (at most %d)", err, tap.MaxTaps), http.StatusTooManyRequests)
		return
	}
	if err != nil {
		http.Error(w, "tap: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer t.Close()
	rc := http.NewResponseController(w)
	// The server's read and write timeouts would cut a long tap (an
	// expired read deadline cancels the request's context).
	end := time.Now().Add(params.Duration + 10*time.Second)
	_ = rc.SetReadDeadline(end)
	_ = rc.SetWriteDeadline(end)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	timer := time.NewTimer(params.Duration)
	defer timer.Stop()
	enc := json.NewEncoder(w)
	for sent := 0; params.Max == 0 || sent < params.Max; sent++ {
		select {
		case <-r.Context().Done():
			return
		case <-timer.C:
			return
		case ev := <-t.C():
			if enc.Encode(ev) != nil || rc.Flush() != nil {
				return
			}
		}
	}
}
