package hcm

import (
	"bufio"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
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

	w := newRecorderStream(r)
	ex := &Exchange{Stats: hs, ds: w}
	h.ensureAnswered(w, r, ex)
	if w.Code != http.StatusInternalServerError || ex.Status != http.StatusInternalServerError || !ex.Flags.Has(accesslog.NoResponseWritten) || hs.rqUnanswered.Value() != 1 {
		t.Errorf("unanswered request: code %d status %d flags %v counted %d, want 500 NRW 1", w.Code, ex.Status, ex.Flags, hs.rqUnanswered.Value())
	}

	w = newRecorderStream(r)
	ex = &Exchange{Stats: hs, Status: http.StatusTeapot, ds: w}
	h.ensureAnswered(w, r, ex)
	if w.Code != http.StatusOK || w.Body.Len() != 0 || hs.rqUnanswered.Value() != 1 {
		t.Errorf("answered request touched: %d %q", w.Code, w.Body)
	}

	w = newRecorderStream(r)
	ex = &Exchange{Stats: hs, Flags: accesslog.DownstreamConnectionTermination, ds: w}
	h.ensureAnswered(w, r, ex)
	if w.resetCode != stream.ResetCancel || w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("client gone: reset %v, code %d body %q; want a CANCEL reset and nothing written", w.resetCode, w.Code, w.Body)
	}
}

// recorderStream is a stream.Downstream that records the response.
type recorderStream struct {
	*httptest.ResponseRecorder
	req       *http.Request
	resetCode stream.ResetCode
}

func newRecorderStream(r *http.Request) *recorderStream {
	return &recorderStream{ResponseRecorder: httptest.NewRecorder(), req: r}
}

func (s *recorderStream) Request() *http.Request          { return s.req }
func (s *recorderStream) Conn() net.Conn                  { return nil }
func (s *recorderStream) WriteTrailers(t http.Header)     { maps.Copy(s.Header(), t) }
func (s *recorderStream) Reset(code stream.ResetCode)     { s.resetCode = code }
func (s *recorderStream) EnableFullDuplex() error         { return nil }
func (s *recorderStream) SetReadDeadline(time.Time) error { return nil }
func (s *recorderStream) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, stream.ErrNotHijackable
}
