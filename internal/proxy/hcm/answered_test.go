package hcm

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/stats"
)

// The proxy never lets its handler end without a response unnoticed: the
// request is answered 500 with flag NRW and counted; when the client is
// gone the stream is aborted rather than answered 200.
func TestEnsureAnswered(t *testing.T) {
	t.Parallel()
	h := &Server{env: &Env{Log: slog.New(slog.DiscardHandler)}}
	st, err := stats.NewStore(stats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := NewStats(st.Scope("http.t."))
	r := httptest.NewRequest(http.MethodGet, "/x", nil)

	ex := &Exchange{Stats: hs}
	w := httptest.NewRecorder()
	h.ensureAnswered(w, r, ex)
	if w.Code != http.StatusInternalServerError || ex.Status != http.StatusInternalServerError || !ex.Flags.Has(accesslog.NoResponseWritten) || hs.rqUnanswered.Value() != 1 {
		t.Errorf("unanswered request: code %d status %d flags %v counted %d, want 500 NRW 1", w.Code, ex.Status, ex.Flags, hs.rqUnanswered.Value())
	}

	ex = &Exchange{Stats: hs, Status: http.StatusTeapot}
	w = httptest.NewRecorder()
	h.ensureAnswered(w, r, ex)
	if w.Code != http.StatusOK || w.Body.Len() != 0 || hs.rqUnanswered.Value() != 1 {
		t.Errorf("answered request touched: %d %q", w.Code, w.Body)
	}

	ex = &Exchange{Stats: hs, Flags: accesslog.DownstreamConnectionTermination}
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("client gone: recovered %v, want http.ErrAbortHandler", v)
			}
		}()
		h.ensureAnswered(httptest.NewRecorder(), r, ex)
	}()
}
