package harness

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/meshlens/meshlens/bench/loadgen"
)

// fakeConn is a client that counts its requests and whether it was
// closed.
type fakeConn struct {
	reqs   atomic.Int32
	closed atomic.Bool
	fail   error
}

func (c *fakeConn) Do(context.Context) error { c.reqs.Add(1); return c.fail }
func (c *fakeConn) Close() error             { c.closed.Store(true); return nil }

// fakeProxy hands out fakeConns and has an RSS that grows by perConn
// bytes with every open connection.
type fakeProxy struct {
	mu      sync.Mutex
	conns   []*fakeConn
	perConn int64
	failAt  int // the connection whose request fails (1-based; 0: none)
}

func (f *fakeProxy) dial(context.Context) (loadgen.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &fakeConn{}
	if len(f.conns)+1 == f.failAt {
		c.fail = errors.New("reset by peer")
	}
	f.conns = append(f.conns, c)
	return c, nil
}

func (f *fakeProxy) rss() (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	open := 0
	for _, c := range f.conns {
		if !c.closed.Load() {
			open++
		}
	}
	return 10<<20 + int64(open)*f.perConn, nil
}

// The figure is the RSS growth with every connection open, per
// connection; each connection made exactly one request, and all are
// closed afterwards.
func TestMeasureIdleConns(t *testing.T) {
	for _, n := range []int{1, 7, 200} {
		f := &fakeProxy{perConn: 6 << 10}
		r, err := measureIdleConns(context.Background(), f.dial, n, 0, f.rss)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if r.Conns != n || r.KBPerConn != 6 || r.RSSBeforeMB != 10 {
			t.Errorf("n=%d: %+v, want %d conns, 6 KB each, 10 MB before", n, r, n)
		}
		if len(f.conns) != n {
			t.Fatalf("n=%d: %d connections dialled", n, len(f.conns))
		}
		for i, c := range f.conns {
			if c.reqs.Load() != 1 || !c.closed.Load() {
				t.Errorf("n=%d: connection %d made %d requests, closed %v", n, i, c.reqs.Load(), c.closed.Load())
			}
		}
	}
}

// A connection whose request fails fails the measurement, naming it, and
// still closes every connection.
func TestMeasureIdleConnsFailure(t *testing.T) {
	f := &fakeProxy{perConn: 1 << 10, failAt: 3}
	_, err := measureIdleConns(context.Background(), f.dial, 5, 0, f.rss)
	if err == nil || !strings.Contains(err.Error(), "reset by peer") {
		t.Fatalf("error %v, want the request's", err)
	}
	for i, c := range f.conns {
		if !c.closed.Load() {
			t.Errorf("connection %d left open", i)
		}
	}
	if _, err := measureIdleConns(context.Background(), f.dial, 0, 0, f.rss); err == nil {
		t.Error("0 connections: no error")
	}
}

// The report puts meshlens beside HAProxy per protocol, with the ratio,
// and the targets check 10 KB per connection.
func TestIdleConnsReport(t *testing.T) {
	res := &Results{SidecarBinary: "meshlens-proxy (test)", IdleRSSMB: map[string]float64{"sidecar-app-http": 18},
		IdleConns: []IdleConns{
			{Proc: "sidecar-app-http", Proto: "http1", Conns: 3000, RSSBeforeMB: 18, RSSAfterMB: 30, KBPerConn: 4.1},
			{Proc: "haproxy-inner", Proto: "http1", Conns: 3000, RSSBeforeMB: 14, RSSAfterMB: 20, KBPerConn: 2.05},
			{Proc: "sidecar-app-h2", Proto: "h2c", Conns: 3000, RSSBeforeMB: 18, RSSAfterMB: 60, KBPerConn: 14.3},
			{Proc: "haproxy-outer", Proto: "h2c", Conns: 3000, RSSBeforeMB: 14, RSSAfterMB: 40, KBPerConn: 8.9},
		}}
	sec := sections(res)
	for _, want := range []string{
		"The sidecars run meshlens-proxy (test).",
		"| http1, 3000 connections | sidecar-app-http, 18.0 → 30.0 | 4.1 | haproxy-inner, 14.0 → 20.0 | 2.0 | 2.00x |",
		"| h2c, 3000 connections | sidecar-app-h2, 18.0 → 60.0 | 14.3 | haproxy-outer, 14.0 → 40.0 | 8.9 | 1.61x |",
	} {
		if !strings.Contains(sec["cost"], want) {
			t.Errorf("cost section lacks %q:\n%s", want, sec["cost"])
		}
	}
	for _, want := range []string{
		"| RSS of an idle sidecar ≤ 20 MB | 18.0 MB (largest sidecar) | yes",
		"| http1: memory per idle keep-alive connection ≤ 10 KB | 4.1 KB vs HAProxy 2.0 KB: 2.00x | yes",
		"| h2c: memory per idle keep-alive connection ≤ 10 KB | 14.3 KB vs HAProxy 8.9 KB: 1.61x | no",
	} {
		if !strings.Contains(sec["targets"], want) {
			t.Errorf("targets lack %q:\n%s", want, sec["targets"])
		}
	}
}
