package router

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/hcm"
)

func TestJudge(t *testing.T) {
	t.Parallel()
	ep := &cluster.Endpoint{Stats: &cluster.EndpointStats{}}
	resp := func(code int, hdr ...string) *http.Response {
		r := &http.Response{StatusCode: code, Header: http.Header{}}
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	timedOut, cancel2 := context.WithCancelCause(context.Background())
	cancel2(hcm.ErrRouteTimeout)
	for _, tc := range []struct {
		name string
		ctx  context.Context
		tr   tryResult
		want verdict
	}{
		{"200", live, tryResult{ep: ep, resp: resp(200)}, verdictOK},
		{"404", live, tryResult{ep: ep, resp: resp(404)}, verdictOK},
		{"503", live, tryResult{ep: ep, resp: resp(503)}, verdictFail},
		{"reset", live, tryResult{ep: ep, err: errors.New("EOF")}, verdictFail},
		{"per-try timeout", live, tryResult{ep: ep, err: context.DeadlineExceeded, perTryTimeout: true}, verdictFail},
		{"route timeout", timedOut, tryResult{ep: ep, err: context.Canceled}, verdictFail},
		{"client gone", gone, tryResult{ep: ep, err: context.Canceled}, verdictNone},
		{"no endpoint", live, tryResult{err: errNoEndpoint}, verdictNone},
		{"grpc trailers-only UNAVAILABLE", live, tryResult{ep: ep, resp: resp(200, "Content-Type", "application/grpc", "Grpc-Status", "14")}, verdictFail},
		{"grpc trailers-only NOT_FOUND", live, tryResult{ep: ep, resp: resp(200, "Content-Type", "application/grpc+proto", "Grpc-Status", "5")}, verdictOK},
		{"grpc streaming", live, tryResult{ep: ep, resp: resp(200, "Content-Type", "application/grpc")}, verdictTrailers},
	} {
		if got := judge(tc.ctx, &tc.tr); got != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, got, tc.want)
		}
	}
	for status, fails := range map[string]bool{"0": false, "1": false, "2": true, "4": true, "5": false, "8": false, "12": true, "13": true, "14": true, "15": true, "16": false, "": true} {
		r := &http.Response{Trailer: http.Header{}}
		if status != "" {
			r.Trailer.Set("Grpc-Status", status)
		}
		if got := grpcOutcome(r, nil); (got == verdictFail) != fails || got == verdictNone {
			t.Errorf("grpc-status %q in trailers: verdict %d, want failed=%v", status, got, fails)
		}
	}
	if grpcOutcome(&http.Response{Trailer: http.Header{"Grpc-Status": {"0"}}}, errUpstreamBody) != verdictFail {
		t.Error("an upstream body error is a failure whatever the trailers")
	}
	if grpcOutcome(&http.Response{Trailer: http.Header{}}, errors.New("write: broken pipe")) != verdictNone {
		t.Error("a client that went away mid-stream counts against the endpoint")
	}
}
