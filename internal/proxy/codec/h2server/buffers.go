package h2server

import (
	"bytes"
	"net"
	"sync"

	"golang.org/x/net/http2"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2frame"
)

// An idle HTTP/2 connection holds no read or write buffer: both come
// from pools while frames are read or written, as HAProxy takes its
// buffers only while a connection has something in them. The HPACK
// tables stay: they are the connection's protocol state.

// readBufPool holds the read buffers of connections waiting for frames.
var readBufPool = sync.Pool{New: func() any {
	b := make([]byte, readBufSize)
	return &b
}}

// connReader is the connection's buffered reader. Its buffer comes from
// readBufPool when bytes are read, and goes back when a detached
// connection with at most one stream in flight has read everything the
// client sent and waits for more (wait): that wait reads into a small
// array, so a connection waiting for its next request holds no buffer.
// A busy connection keeps its buffer, and reads as a bufio.Reader would.
type connReader struct {
	rwc  net.Conn
	buf  *[]byte // from readBufPool; nil when none held
	r, w int     // buf[r:w] is unread
	full bool    // the last read into buf filled it: more is likely waiting
	// small holds what wait read: small[sr:sw] is unread.
	small  [64]byte
	sr, sw int
}

// drained reports whether the next read waits for the client, as far as
// the reader can tell: nothing is buffered, and the last read did not
// fill the buffer.
func (cr *connReader) drained() bool {
	return cr.sr == cr.sw && cr.r == cr.w && !cr.full
}

// wait gives the buffer back and waits for the client's next bytes,
// reading them into small.
func (cr *connReader) wait() error {
	cr.release()
	for {
		n, err := cr.rwc.Read(cr.small[:])
		if n > 0 {
			cr.sr, cr.sw = 0, n
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (cr *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if cr.sr < cr.sw {
		n := copy(p, cr.small[cr.sr:cr.sw])
		cr.sr += n
		return n, nil
	}
	if cr.r == cr.w {
		if cr.buf == nil {
			cr.buf = readBufPool.Get().(*[]byte)
		}
		n, err := cr.rwc.Read(*cr.buf)
		cr.r, cr.w = 0, n
		cr.full = n == len(*cr.buf)
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, (*cr.buf)[cr.r:cr.w])
	cr.r += n
	return n, nil
}

// frameBuffered reports whether a whole frame is buffered: the next
// frame is read without waiting for the client.
func (cr *connReader) frameBuffered() bool {
	var b []byte
	switch {
	case cr.sr < cr.sw:
		if cr.r < cr.w {
			return false // the rest of the bytes are in two places: not worth a look
		}
		b = cr.small[cr.sr:cr.sw]
	case cr.buf != nil:
		b = (*cr.buf)[cr.r:cr.w]
	}
	return h2frame.Whole(b, len(b))
}

// release gives the buffer back, empty.
func (cr *connReader) release() {
	if cr.buf != nil {
		readBufPool.Put(cr.buf)
		cr.buf, cr.r, cr.w, cr.full = nil, 0, 0, false
	}
}

// batch is what the writer encodes frames into: a buffer and a framer
// writing into it, held while frames are written and given back when the
// connection has no stream open and nothing queued. Its header writer
// goes with it: responses are encoded with no dynamic table
// (h2frame.NewLiteralHeaderWriter), so a header writer holds nothing of
// a connection's once it has written a block, and any connection's
// writer may use it. A header writer new to the connection starts its
// first block with a table size update to zero, which any block may
// start with.
type batch struct {
	buf bytes.Buffer
	fr  *http2.Framer
	hw  *h2frame.HeaderWriter
}

var batchPool = sync.Pool{New: func() any {
	b := &batch{hw: h2frame.NewLiteralHeaderWriter()}
	b.fr = http2.NewFramer(&b.buf, nil)
	return b
}}

// maxKeptBatch is the largest buffer a batch goes back to the pool with.
const maxKeptBatch = 64 << 10
