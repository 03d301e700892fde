package harness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/meshlens/meshlens/bench/loadgen"
)

// IdleConns is the memory one proxy process holds per idle keep-alive
// connection: Conns client connections, each having made one request,
// held open; the process's RSS is read before they open and after they
// have been idle for a while.
type IdleConns struct {
	// Proc names the process (its IdleRSSMB key); Proto is http1 or h2c.
	Proc  string `json:"proc"`
	Proto string `json:"proto"`
	Conns int    `json:"conns"`
	// RSSBeforeMB and RSSAfterMB are the process's RSS before the
	// connections opened and with all of them open and idle.
	RSSBeforeMB float64 `json:"rss_before_mb"`
	RSSAfterMB  float64 `json:"rss_after_mb"`
	// KBPerConn is (after - before) / Conns.
	KBPerConn float64 `json:"kb_per_conn"`
}

// idleConnWorkers is how many connections open at once.
const idleConnWorkers = 64

// measureIdleConns opens n clients of dial, makes one request on each
// (idleConnWorkers at a time), waits settle with all of them open, and
// returns what rss, the proxy's RSS in bytes, grew by per connection.
// Every client is closed before it returns.
func measureIdleConns(ctx context.Context, dial loadgen.Dialer, n int, settle time.Duration, rss func() (int64, error)) (IdleConns, error) {
	if n <= 0 {
		return IdleConns{}, fmt.Errorf("idle connections: %d connections, want at least 1", n)
	}
	before, err := rss()
	if err != nil {
		return IdleConns{}, fmt.Errorf("idle connections: RSS before: %w", err)
	}
	clients := make([]loadgen.Client, n)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for range min(idleConnWorkers, n) {
		wg.Go(func() {
			for i := range next {
				err := openOne(ctx, dial, &clients[i])
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, fmt.Errorf("connection %d: %w", i, err))
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return IdleConns{}, fmt.Errorf("idle connections: %w", firstErr)
	}
	select {
	case <-ctx.Done():
		return IdleConns{}, fmt.Errorf("idle connections: %w", ctx.Err())
	case <-time.After(settle):
	}
	after, err := rss()
	if err != nil {
		return IdleConns{}, fmt.Errorf("idle connections: RSS after: %w", err)
	}
	return IdleConns{Conns: n, RSSBeforeMB: mb(before), RSSAfterMB: mb(after), KBPerConn: float64(after-before) / 1024 / float64(n)}, nil
}

// openOne dials one client into *c and makes its request.
func openOne(ctx context.Context, dial loadgen.Dialer, c *loadgen.Client) error {
	cl, err := dial(ctx)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	*c = cl
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.Do(rctx); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	return nil
}

// cmpErr keeps the first error.
func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// idleConnTarget is one measurement: a protocol into one proxy process.
type idleConnTarget struct {
	proc, proto, path string
	p                 *proc
}

// runIdleConns measures memory per idle connection for HTTP/1.1 and h2c,
// meshlens and HAProxy interleaved, each on a process no load has gone
// through yet: the HTTP/1.1 server sidecar and the inner HAProxy for
// HTTP/1.1, the h2c server sidecar and the outer HAProxy for h2c.
func (e *env) runIdleConns(ctx context.Context, n int, settle time.Duration) ([]IdleConns, error) {
	targets := []idleConnTarget{
		{"sidecar-" + serverNodes[0].name, "http1", pathML1, e.sidecars[serverNodes[0].name].p},
		{"haproxy-inner", "http1", pathHA1, e.haInner},
		{"sidecar-" + serverNodes[1].name, "h2c", pathML1, e.sidecars[serverNodes[1].name].p},
		{"haproxy-outer", "h2c", pathHA2, e.haOuter},
	}
	var out []IdleConns
	var errs []error
	for _, t := range targets {
		dial, err := e.dialer(t.path, scenarioByID(t.proto+"-1k"))
		if err != nil {
			return out, err
		}
		r, err := measureIdleConns(ctx, dial, n, settle, func() (int64, error) {
			u, err := readUsage(t.p.pid())
			return u.RSS, err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", t.proc, t.proto, err))
			continue
		}
		r.Proc, r.Proto = t.proc, t.proto
		slog.Info("idle connections", "proc", r.Proc, "proto", r.Proto, "conns", r.Conns, "kb_per_conn", r.KBPerConn)
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}
