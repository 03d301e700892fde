package h2server

import (
	"net/http"
	"sync/atomic"
	"time"
)

// Stream handlers run on workers: a goroutine that ran a handler waits a
// while for the next stream of any of the server's connections instead
// of ending. A goroutine started per stream begins with a small stack
// that every handler grows again (the upstream client's header encoding
// and connection lookup go deep), and copying stacks as they grew was
// 6 % of a gRPC sidecar's CPU; a worker keeps the stack it grew.

// workerIdle is how long a worker waits for another stream before it
// ends, so an idle server keeps no goroutines.
const workerIdle = 5 * time.Second

// maxIdleWorkers bounds the workers waiting for a stream; a worker that
// finds that many waiting ends.
const maxIdleWorkers = 64

// handlerJob is one stream for a worker.
type handlerJob struct {
	c   *conn
	s   *stream
	rw  *responseWriter
	req *http.Request
}

// workerPool is a server's workers; the zero value is ready.
type workerPool struct {
	// jobs is unbuffered: a send succeeds only into a waiting worker.
	// Server.track makes it, under the server's mutex, before the
	// connection's first stream.
	jobs chan handlerJob
	idle atomic.Int32 // workers waiting on jobs
}

// run runs j's handler on a waiting worker, or on a new one.
func (p *workerPool) run(j handlerJob) {
	select {
	case p.jobs <- j:
		return
	default:
	}
	go p.work(j)
}

// work runs j, then the streams handed to it, until it waited workerIdle
// for one or too many workers wait already.
func (p *workerPool) work(j handlerJob) {
	var t *time.Timer
	for {
		j.c.runHandler(j.s, j.rw, j.req)
		j = handlerJob{}
		if p.idle.Add(1) > maxIdleWorkers {
			p.idle.Add(-1)
			return
		}
		if t == nil {
			t = time.NewTimer(workerIdle)
		} else {
			t.Reset(workerIdle)
		}
		select {
		case j = <-p.jobs:
			p.idle.Add(-1)
		case <-t.C:
			p.idle.Add(-1)
			// A job sent as the timer fired is taken by the select
			// above or not at all: the send is unbuffered.
			return
		}
	}
}
