package export

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/meshlens/meshlens/internal/tracing"
)

// Counter counts; *stats.Counter is one.
type Counter interface {
	Add(n uint64)
}

// Stats are an exporter's counters, in spans; nil ones are not counted.
type Stats struct {
	// Sent counts spans the collector accepted.
	Sent Counter
	// Dropped counts spans refused because the queue was full.
	Dropped Counter
	// Failed counts spans whose send failed for good (after retries, or
	// rejected by the collector).
	Failed Counter
}

func add(c Counter, n int) {
	if c != nil && n > 0 {
		c.Add(uint64(n))
	}
}

// Options tune a Batcher; zero fields take the defaults.
type Options struct {
	// QueueSize is how many spans wait at most (default 2048).
	QueueSize int
	// BatchSize is the most spans sent at once (default 512).
	BatchSize int
	// FlushInterval is how long a partial batch waits (default 1s).
	FlushInterval time.Duration
	// MaxRetries is how many times a failed send is retried (default 3;
	// negative: never).
	MaxRetries int
	// InitialBackoff and MaxBackoff bound the wait between tries
	// (defaults 100ms and 5s).
	InitialBackoff, MaxBackoff time.Duration
	// Timeout bounds one send (default 10s).
	Timeout time.Duration
	// Stats are the counters.
	Stats Stats
	// Logger logs failed sends, at most one line a minute (with the
	// number of batches that failed since the last line); default
	// slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.QueueSize <= 0 {
		o.QueueSize = 2048
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 512
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 3
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// sendFunc sends one batch. It returns the number of spans the collector
// rejected (partial success) and an error; a permanent error is not
// retried.
type sendFunc func(ctx context.Context, batch []tracing.SpanData) (rejected int, err error)

// permanentError is a failure that retrying will not mend.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// Batcher is the queue and worker every exporter is built on.
//
// The queue is a slice that grows as spans arrive, not a channel of
// QueueSize spans: a channel's buffer is allocated whole when it is made
// (about 1 MB at the default size), which every sidecar with tracing on
// would hold while idle. The worker keeps the slice it emptied for the
// next batch while spans keep coming, and lets it go after a flush that
// found few, so an idle sidecar holds none.
type Batcher struct {
	name string
	send sendFunc
	o    Options

	mu      sync.Mutex
	pending []tracing.SpanData // at most QueueSize
	closed  bool               // Shutdown began: Export drops
	wake    chan struct{}      // cap 1: pending reached BatchSize

	stop   chan struct{}
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	close  func() error

	// Owned by the worker: log throttling.
	lastLog     time.Time
	failedSince int
}

// logEvery is the least time between two "export failed" lines.
const logEvery = time.Minute

func (b *Batcher) logFailure(spans, tries int, err error) {
	b.failedSince++
	now := time.Now()
	if !b.lastLog.IsZero() && now.Sub(b.lastLog) < logEvery {
		return
	}
	b.o.Logger.Warn("trace export failed", "exporter", b.name, "spans", spans, "tries", tries,
		"failed_batches", b.failedSince, "error", err)
	b.lastLog, b.failedSince = now, 0
}

func newBatcher(name string, send sendFunc, closeFn func() error, o Options) *Batcher {
	o.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	b := &Batcher{
		name: name, send: send, o: o, close: closeFn,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}
	go b.run()
	return b
}

// Export queues d, or drops it and counts the drop when the queue is
// full. It never blocks.
func (b *Batcher) Export(d tracing.SpanData) {
	b.mu.Lock()
	if b.closed || len(b.pending) >= b.o.QueueSize {
		b.mu.Unlock()
		add(b.o.Stats.Dropped, 1)
		return
	}
	b.pending = append(b.pending, d)
	full := len(b.pending) == b.o.BatchSize
	b.mu.Unlock()
	if full {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// Shutdown stops the worker after it has sent what was queued; when ctx
// ends first, the sends in flight are abandoned. Spans exported after
// Shutdown are dropped and counted.
func (b *Batcher) Shutdown(ctx context.Context) error {
	b.once.Do(func() { close(b.stop) })
	var err error
	select {
	case <-b.done:
	case <-ctx.Done():
		b.cancel()
		<-b.done
		err = ctx.Err()
	}
	b.cancel()
	if b.close != nil {
		if cerr := b.close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

func (b *Batcher) run() {
	defer close(b.done)
	tick := time.NewTicker(b.o.FlushInterval)
	defer tick.Stop()
	var spare []tracing.SpanData
	for {
		stopping := false
		select {
		case <-b.wake:
		case <-tick.C:
		case <-b.stop:
			stopping = true
		}
		b.mu.Lock()
		batch := b.pending
		b.pending = spare
		b.closed = stopping
		b.mu.Unlock()
		for rest := batch; len(rest) > 0; {
			n := min(len(rest), b.o.BatchSize)
			b.sendWithRetry(rest[:n])
			rest = rest[n:]
		}
		if stopping {
			return
		}
		clear(batch) // let the spans' strings go
		// Keep the slice for the next batch while spans keep coming;
		// let it go once they slow down.
		spare = nil
		if len(batch) >= b.o.BatchSize/4 {
			spare = batch[:0]
		}
	}
}

func (b *Batcher) sendWithRetry(batch []tracing.SpanData) {
	backoff := b.o.InitialBackoff
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(b.ctx, b.o.Timeout)
		rejected, err := b.send(ctx, batch)
		cancel()
		if err == nil {
			add(b.o.Stats.Sent, len(batch)-rejected)
			add(b.o.Stats.Failed, rejected)
			return
		}
		var perm permanentError
		if errors.As(err, &perm) || try >= b.o.MaxRetries || b.ctx.Err() != nil {
			add(b.o.Stats.Failed, len(batch))
			b.logFailure(len(batch), try+1, err)
			return
		}
		// Jitter: wait between half and one and a half times the backoff.
		wait := time.Duration(rand.Int64N(int64(backoff))) + backoff/2
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-b.ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, b.o.MaxBackoff)
	}
}
