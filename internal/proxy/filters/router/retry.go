package router

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

// MaxRetryBody is how much of a request body is kept so that the request
// can be retried: Envoy's per-request buffer limit (64 KiB by default).
// The body streams to the first attempt as it arrives, whatever its
// framing (Content-Length, chunked, HTTP/2 DATA, gRPC), while a copy of
// what was read is kept; a retry replays the copy and goes on with the
// rest. Once the body outgrew the copy the request is not retried: a
// retry must not replay a body partly, nor buffer an upload without
// bound.
const MaxRetryBody = 64 << 10

// errBodyOutgrew: a retry needed the part of the request body that was
// not kept (it outgrew maxRetryBody meanwhile).
var errBodyOutgrew = errors.New("request body outgrew the retry buffer")

// errAttemptOver: a body reader of an attempt that was given up.
var errAttemptOver = errors.New("request body read by an attempt that was given up")

// replayBody is a request body read once from downstream (src) and fed to
// as many attempts as the retry policy allows, each through a bodyView of
// its own. It keeps what it read, up to limit, so that a later attempt
// replays it and then reads on from src. One read of src at a time: a
// view reads src under mu, so an abandoned attempt whose transport is
// still blocked reading the body delays the next attempt's read of src
// until the client sends more, and never reads them concurrently. What
// such an abandoned read brings is kept even past limit (one read more),
// for the attempt that replaced it; only then does the body count as
// outgrown.
type replayBody struct {
	src   io.Reader
	limit int

	mu    sync.Mutex
	kept  []byte // the first bytes of the body
	total int64  // bytes read from src
	over  bool   // the body outgrew limit: kept is no longer all of it
	eof   bool   // src is at its end
	err   error  // src failed; sticky
}

func newReplayBody(src io.Reader, contentLength int64, limit int) *replayBody {
	rb := &replayBody{src: src, limit: limit}
	if contentLength > 0 && contentLength <= int64(limit) {
		rb.kept = make([]byte, 0, contentLength)
	}
	return rb
}

// canReplay reports whether a new attempt can be given the whole body:
// everything read so far is kept and src did not fail.
func (rb *replayBody) canReplay() bool {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return !rb.over && rb.err == nil
}

// view returns a reader of the body from its start, for one attempt.
func (rb *replayBody) view() *bodyView { return &bodyView{rb: rb} }

// bodyView is one attempt's reader of a replayBody. Close (which a
// transport may call while Read is blocked) only detaches it.
type bodyView struct {
	rb   *replayBody
	off  int64
	dead atomic.Bool
}

// Read implements io.Reader.
func (v *bodyView) Read(p []byte) (int, error) {
	return v.read(p, false)
}

// ReadReady implements stream.ReadyReader: the kept bytes this view has
// not read, else what the downstream body has buffered, when it can say
// so without waiting (0 and nil otherwise). An upstream codec then sends
// a body that is whole when the attempt starts with its head, in one
// write, as it does without a retry policy.
func (v *bodyView) ReadReady(p []byte) (int, error) {
	return v.read(p, true)
}

// read reads the view's next bytes: the kept ones, then src's (only what
// src has buffered when ready is set), which it keeps for a later
// attempt.
func (v *bodyView) read(p []byte, ready bool) (int, error) {
	rb := v.rb
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if v.dead.Load() {
		return 0, errAttemptOver
	}
	if v.off < int64(len(rb.kept)) {
		n := copy(p, rb.kept[v.off:])
		v.off += int64(n)
		return n, nil
	}
	switch {
	case v.off != rb.total:
		return 0, errBodyOutgrew // what this view needs next is not kept
	case rb.err != nil:
		return 0, rb.err
	case rb.eof:
		return 0, io.EOF
	}
	var n int
	var err error
	if ready {
		rr, ok := rb.src.(stream.ReadyReader)
		if !ok {
			return 0, nil
		}
		n, err = rr.ReadReady(p)
	} else {
		n, err = rb.src.Read(p)
	}
	if n > 0 {
		rb.total += int64(n)
		v.off += int64(n)
		switch {
		case rb.over:
		case len(rb.kept)+n <= rb.limit:
			rb.kept = append(rb.kept, p[:n]...)
		case v.dead.Load():
			// An abandoned attempt read them: the next attempt needs
			// them, and nothing after them can be replayed.
			rb.kept = append(rb.kept, p[:n]...)
			rb.over = true
		default:
			// This view goes on streaming; no other attempt follows.
			rb.over = true
		}
	}
	switch {
	case err == io.EOF:
		rb.eof = true
	case err != nil:
		rb.err = err
	}
	return n, err
}

// Close implements io.Closer: the attempt is over; the downstream body
// stays open for the next one.
func (v *bodyView) Close() error {
	v.dead.Store(true)
	return nil
}

// attach gives an attempt's request its own view of the body.
func (rb *replayBody) attach(out *http.Request) *bodyView {
	v := rb.view()
	out.Body = v
	// A transport that retries on its own (HTTP/2 after a refused
	// stream) asks for the body again.
	out.GetBody = func() (io.ReadCloser, error) {
		if !rb.canReplay() {
			return nil, errBodyOutgrew
		}
		return rb.view(), nil
	}
	return v
}

// gRPC status codes the retry policy can name.
const (
	grpcCancelled         = "1"
	grpcDeadlineExceeded  = "4"
	grpcResourceExhausted = "8"
	grpcInternal          = "13"
	grpcUnavailable       = "14"
)

// retriable reports whether an attempt's outcome may be retried under
// the policy, with Envoy's meaning of each retry_on condition. Nothing is
// retried once the request itself is over (route timeout, stream idle,
// client gone).
func retriable(pol *table.RetryPolicy, tr *tryResult, ctx context.Context) bool {
	if ctx.Err() != nil || tr.downstream || tr.outgrew {
		return false
	}
	on := pol.On
	if tr.err != nil {
		var ce *cluster.ConnectError
		switch {
		case errors.Is(tr.err, errNoEndpoint), errors.Is(tr.err, cluster.ErrOverflow):
			// Envoy retries neither a cluster with nothing to offer nor
			// a circuit breaker's refusal.
			return false
		case errors.As(tr.err, &ce):
			return on&(table.RetryConnectFailure|table.Retry5xx|table.RetryGatewayError|table.RetryResetBeforeRequest) != 0
		case tr.perTryTimeout:
			return on&(table.Retry5xx|table.RetryGatewayError) != 0
		case errors.Is(tr.err, stream.ErrRefusedStream):
			return on&(table.RetryRefusedStream|table.Retry5xx|table.RetryGatewayError|table.RetryReset) != 0
		}
		return on&(table.RetryReset|table.Retry5xx|table.RetryGatewayError) != 0
	}
	code := tr.resp.StatusCode
	switch {
	case code >= 500 && on&table.Retry5xx != 0,
		(code == 502 || code == 503 || code == 504) && on&table.RetryGatewayError != 0,
		code == 409 && on&table.RetryRetriable4xx != 0,
		on&table.RetryRetriableStatusCodes != 0 && slices.Contains(pol.RetriableStatusCodes, uint32(code)):
		return true
	}
	if on&table.RetryEnvoyRateLimited != 0 && tr.resp.Header.Get("X-Envoy-Ratelimited") != "" {
		return true
	}
	// gRPC: a status in the response headers (a trailers-only response).
	switch tr.resp.Header.Get("Grpc-Status") {
	case grpcCancelled:
		return on&table.RetryGRPCCancelled != 0
	case grpcDeadlineExceeded:
		return on&table.RetryGRPCDeadline != 0
	case grpcResourceExhausted:
		return on&table.RetryGRPCResourceExhausted != 0
	case grpcInternal:
		return on&table.RetryGRPCInternal != 0
	case grpcUnavailable:
		return on&table.RetryGRPCUnavailable != 0
	}
	return false
}

// backoff waits before retry number n (0-based) as Envoy does: a random
// time in [0, (2^(n+1)-1) * base), capped at max. It returns false when
// ctx ended first.
func backoff(ctx context.Context, pol *table.RetryPolicy, n int) bool {
	base, maxWait := pol.BackoffBase, pol.BackoffMax
	if base <= 0 {
		base = 25 * time.Millisecond
	}
	if maxWait < base {
		maxWait = 10 * base
	}
	upper := base * time.Duration(uint64(1)<<min(n+1, 30)-1)
	upper = min(upper, maxWait)
	d := time.Duration(rand.Int64N(int64(upper) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

var _ stream.ReadyReader = (*bodyView)(nil)
