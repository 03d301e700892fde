package h2frame

import "sync"

// BodyBufSize is the size of the arrays a BodyBuf takes from its pool:
// one DATA frame of the default SETTINGS_MAX_FRAME_SIZE.
const BodyBufSize = 16 << 10

var bodyBufPool = sync.Pool{New: func() any {
	b := make([]byte, BodyBufSize)
	return &b
}}

// BodyBuf holds a stream's body bytes between the goroutine that
// receives them and the one that reads them: a unary call's body passes
// through one, both ways, in each codec. Its array comes from a pool
// when the first bytes arrive and goes back as soon as every byte is
// read, so relaying a body allocates nothing in steady state, and a
// stream with nothing buffered holds no array.
//
// A BodyBuf is not safe for concurrent use: the codecs use one under
// their connection's lock, and copy bytes out of it before unlocking,
// so no slice of a pooled array outlives the lock.
type BodyBuf struct {
	b      []byte // b[off:] is unread
	off    int
	pooled *[]byte // the pool's array b was first taken from; nil if none
}

// Len is how many bytes are buffered.
func (q *BodyBuf) Len() int { return len(q.b) - q.off }

// Bytes returns the buffered bytes, valid until the next call that
// changes q.
func (q *BodyBuf) Bytes() []byte { return q.b[q.off:] }

// Append buffers p. A buffer that outgrows the pool's array moves to
// an array of its own, as append does.
func (q *BodyBuf) Append(p []byte) {
	if len(p) == 0 {
		return
	}
	switch {
	case q.b == nil && len(p) <= BodyBufSize:
		q.pooled = bodyBufPool.Get().(*[]byte)
		q.b = (*q.pooled)[:0]
	case q.off > 0 && len(q.b)+len(p) > cap(q.b):
		// Move the unread bytes down before growing.
		q.b = q.b[:copy(q.b, q.b[q.off:])]
		q.off = 0
	}
	q.b = append(q.b, p...)
}

// Read copies buffered bytes into p and drops them.
func (q *BodyBuf) Read(p []byte) int {
	n := copy(p, q.b[q.off:])
	q.Consume(n)
	return n
}

// Consume drops the first n buffered bytes (n <= Len); the array goes
// back to the pool once nothing is left.
func (q *BodyBuf) Consume(n int) {
	q.off += n
	if q.off >= len(q.b) {
		q.Reset()
	}
}

// Reset drops what is buffered and gives the array back.
func (q *BodyBuf) Reset() {
	if q.pooled != nil {
		bodyBufPool.Put(q.pooled)
		q.pooled = nil
	}
	q.b, q.off = nil, 0
}
