package ratelimit

import (
	"math"
	"sync/atomic"
	"time"
)

// epoch anchors Now; time.Since reads the monotonic clock, so wall-clock
// steps never refill or drain a bucket.
var epoch = time.Now()

// Now is the monotonic clock in nanoseconds since process start, the time
// base every Bucket method takes.
func Now() int64 { return int64(time.Since(epoch)) }

// Bucket is Envoy's token bucket: it starts with max_tokens tokens and,
// at every fill_interval boundary, gains tokens_per_fill tokens, never
// holding more than max_tokens. Each allowed request or connection takes
// one.
//
// It keeps its whole state in one atomic int64 and refills lazily from the
// time the caller passes, so there is no timer, no lock and no allocation:
// with k = (fill intervals elapsed) × tokens_per_fill, the state s is
// k − tokens at the last update, and the tokens now are min(max, k − s).
// The arithmetic is exact for 2^63/tokens_per_fill fill intervals of
// uptime (over three years even at the largest tokens_per_fill and the
// smallest interval, thousands of years at realistic ones).
type Bucket struct {
	s        atomic.Int64
	start    int64 // Now() at creation
	interval int64 // fill interval in ns, > 0
	max      int64
	perFill  int64
}

// NewBucket returns a full bucket. now is Now() (or a test's clock).
func NewBucket(maxTokens, tokensPerFill uint32, fillInterval time.Duration, now int64) *Bucket {
	if fillInterval <= 0 {
		fillInterval = time.Second
	}
	if maxTokens == 0 {
		maxTokens = 1
	}
	if tokensPerFill == 0 {
		tokensPerFill = 1
	}
	per := int64(tokensPerFill)
	if per > int64(maxTokens) {
		// More than max_tokens per fill fills the bucket, as max_tokens does.
		per = int64(maxTokens)
	}
	b := &Bucket{start: now, interval: int64(fillInterval), max: int64(maxTokens), perFill: per}
	b.s.Store(-b.max)
	return b
}

// k is the fills elapsed at now times tokens_per_fill, saturating.
func (b *Bucket) k(now int64) int64 {
	e := now - b.start
	if e < 0 {
		return 0
	}
	t := e / b.interval
	if t > math.MaxInt64/b.perFill {
		return math.MaxInt64 - b.max
	}
	return t * b.perFill
}

// untilFill is the time from now to the next fill boundary.
func (b *Bucket) untilFill(now int64) time.Duration {
	e := now - b.start
	if e < 0 {
		return time.Duration(-e + b.interval)
	}
	return time.Duration(b.interval - e%b.interval)
}

// Allow takes a token if there is one. When there is none it returns false
// and the time until the next fill, when one will be. It never blocks,
// locks or allocates.
func (b *Bucket) Allow(now int64) (ok bool, retryAfter time.Duration) {
	k := b.k(now)
	for {
		s := b.s.Load()
		avail := k - s
		if avail > b.max {
			avail = b.max
		}
		if avail <= 0 {
			return false, b.untilFill(now)
		}
		if b.s.CompareAndSwap(s, k-avail+1) {
			return true, 0
		}
	}
}

// Remaining is the number of tokens in the bucket at now.
func (b *Bucket) Remaining(now int64) uint32 {
	avail := b.k(now) - b.s.Load()
	if avail > b.max {
		avail = b.max
	}
	if avail < 0 {
		avail = 0
	}
	return uint32(avail)
}

// MaxTokens is the bucket's capacity.
func (b *Bucket) MaxTokens() uint32 { return uint32(b.max) }

// UntilFill is the time from now to the next fill.
func (b *Bucket) UntilFill(now int64) time.Duration { return b.untilFill(now) }
