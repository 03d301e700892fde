// Package workers runs a codec's per-request work on goroutines that keep
// the stacks they grew.
//
// A goroutine started per request (an HTTP/2 stream's handler, an
// HTTP/1.1 connection's next request after its idle wait) begins with the
// runtime's smallest stack, and every request grows it again: the router,
// the upstream codec and the filters go deep, and copying stacks as they
// grew was 6 % of a gRPC sidecar's CPU and 15 % of an HTTP/1.1 inbound
// sidecar's. A worker runs a job, then waits a while for the next one
// instead of ending, so the stack it grew serves the next request. An
// idle server keeps no workers: a worker that waited Idle for a job, or
// found MaxIdle workers waiting already, ends.
package workers

import (
	"sync/atomic"
	"time"
)

// Defaults of a Pool.
const (
	DefaultIdle    = 5 * time.Second
	DefaultMaxIdle = 64
)

// Pool runs jobs of type J with Do. Init must be called before Run, once.
type Pool[J any] struct {
	// Do runs one job.
	Do func(J)
	// Idle is how long a worker waits for another job before it ends;
	// MaxIdle bounds the workers waiting. Zero: the defaults.
	Idle    time.Duration
	MaxIdle int32

	// jobs is unbuffered: a send succeeds only into a waiting worker.
	jobs chan J
	idle atomic.Int32 // workers waiting on jobs
}

// Init makes the pool ready.
func (p *Pool[J]) Init() {
	p.jobs = make(chan J)
	if p.Idle <= 0 {
		p.Idle = DefaultIdle
	}
	if p.MaxIdle <= 0 {
		p.MaxIdle = DefaultMaxIdle
	}
}

// Run runs j on a waiting worker, or on a new one.
func (p *Pool[J]) Run(j J) {
	select {
	case p.jobs <- j:
		return
	default:
	}
	go p.work(j)
}

// Waiting returns how many workers wait for a job.
func (p *Pool[J]) Waiting() int { return int(p.idle.Load()) }

// work runs j, then the jobs handed to it, until it waited Idle for one
// or too many workers wait already.
func (p *Pool[J]) work(j J) {
	var t *time.Timer
	var zero J
	for {
		p.Do(j)
		j = zero // hold nothing of the job while waiting
		if p.idle.Add(1) > p.MaxIdle {
			p.idle.Add(-1)
			return
		}
		if t == nil {
			t = time.NewTimer(p.Idle)
		} else {
			t.Reset(p.Idle)
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
