package h2server

import (
	"net/http"

	"github.com/meshlens/meshlens/internal/proxy/codec/workers"
)

// Stream handlers run on workers (package workers): a goroutine that ran
// a handler waits a while for the next stream of any of the server's
// connections instead of ending, so the stack the handler grew (the
// upstream client's header encoding and connection lookup go deep) serves
// the next stream.

// handlerJob is one stream for a worker.
type handlerJob struct {
	c   *conn
	s   *stream
	rw  *responseWriter
	req *http.Request
}

func runHandlerJob(j handlerJob) { j.c.runHandler(j.s, j.rw, j.req) }

// workerPool is a server's workers; Server.track readies it, under the
// server's mutex, before the connection's first stream.
type workerPool = workers.Pool[handlerJob]
