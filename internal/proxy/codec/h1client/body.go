package h1client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/h1lex"
)

// Body framings.
const (
	bodyNone    = iota
	bodyLength  // Content-Length
	bodyChunked // Transfer-Encoding: chunked
	bodyClose   // until the upstream closes the connection
)

// Limits of Close on a body that was not read to the end: the rest is
// read and discarded, so the connection can be reused, only if it is
// small and arrives soon.
const (
	maxDrainBytes = 256 << 10
	drainTimeout  = 50 * time.Millisecond
)

// maxChunkLine bounds a chunk-size line, as net/http does.
const maxChunkLine = 4096

var errBodyClosed = errors.New("h1client: read on closed response body")

// body is a response body read from the connection's buffered reader.
// Read and Close may be called from different goroutines; a Close during
// a blocked Read closes the connection to end it.
type body struct {
	c         *conn
	resp      *http.Response
	ctx       context.Context
	stop      func() bool // stops the context's AfterFunc
	wdone     chan struct{}
	kind      int
	remaining int64 // of the Content-Length or of the current chunk
	crlf      bool  // a chunk's data has been read; its CRLF has not
	closeConn bool  // the connection is not reusable after this exchange

	mu      sync.Mutex
	reading bool
	closed  bool
	done    bool  // the connection has been released
	err     error // returned by Read once done
}

// Read reads the body. At EOF, and when the exchange allows it, the
// connection returns to the idle pool before Read returns.
func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, errBodyClosed
	}
	if b.done {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	b.reading = true
	b.mu.Unlock()

	n, err := b.read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	if b.closed {
		// Close ran during the read and closed the connection.
		b.done = true
		b.err = errBodyClosed
		b.finish(false)
		if err == nil || err == io.EOF {
			return n, err
		}
		return n, errBodyClosed
	}
	if err == nil {
		return n, nil
	}
	b.done = true
	if err == io.EOF {
		b.err = io.EOF
		b.finish(true)
		return n, io.EOF
	}
	if ctxErr := b.ctx.Err(); ctxErr != nil {
		err = ctxErr
	}
	err = fmt.Errorf("h1client: read response body from %s: %w", b.c.p.addr, err)
	b.err = err
	b.finish(false)
	return n, err
}

// Close ends the body. If it was not read to the end, the rest is
// discarded when it is at most maxDrainBytes and arrives within
// drainTimeout, so that the connection can be reused; otherwise the
// connection is closed.
func (b *body) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	if b.done {
		b.mu.Unlock()
		return nil
	}
	if b.reading {
		b.mu.Unlock()
		b.c.nc.Close()
		return nil
	}
	b.done = true
	b.err = errBodyClosed
	b.mu.Unlock()
	b.finish(b.drain())
	return nil
}

// finish releases the connection: back to the idle pool when the
// exchange ended cleanly and allows reuse, closed otherwise.
func (b *body) finish(clean bool) {
	reuse := clean && !b.closeConn
	if b.stop != nil && !b.stop() {
		reuse = false // the context's AfterFunc closed the connection
	}
	if b.wdone != nil {
		select {
		case <-b.wdone:
			if b.c.werr != nil {
				reuse = false
			}
		default:
			// The response ended before the request body goroutine
			// finished: it may be about to, or the upstream answered
			// without reading the whole body.
			if reuse {
				b.c.reuseAfterWrite(b.wdone)
				return
			}
		}
	}
	if reuse {
		b.c.p.put(b.c)
	} else {
		b.c.close()
	}
}

func (b *body) read(p []byte) (int, error) {
	br := b.c.br
	switch b.kind {
	case bodyLength:
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err := br.Read(p)
		b.remaining -= int64(n)
		if b.remaining == 0 {
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	case bodyChunked:
		return b.readChunked(p)
	default:
		return br.Read(p)
	}
}

// readChunked returns the data of as many chunks as fit in p without
// blocking once some data was read.
func (b *body) readChunked(p []byte) (n int, err error) {
	br := b.c.br
	for {
		if b.crlf {
			if n > 0 && br.Buffered() < 2 {
				return n, nil
			}
			if err := b.chunkEnd(); err != nil {
				return n, err
			}
		}
		if b.remaining == 0 {
			if n > 0 && !b.lineBuffered() {
				return n, nil
			}
			last, err := b.nextChunk()
			if err != nil {
				return n, err
			}
			if last {
				return n, io.EOF
			}
			continue
		}
		if len(p) == 0 || (n > 0 && br.Buffered() == 0) {
			return n, nil
		}
		q := p
		if int64(len(q)) > b.remaining {
			q = q[:b.remaining]
		}
		m, err := br.Read(q)
		n += m
		p = p[m:]
		b.remaining -= int64(m)
		if b.remaining == 0 {
			b.crlf = true
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
}

func (b *body) lineBuffered() bool {
	buf, _ := b.c.br.Peek(b.c.br.Buffered())
	return bytes.IndexByte(buf, '\n') >= 0
}

// chunkEnd consumes the CRLF after a chunk's data.
func (b *body) chunkEnd() error {
	buf, err := b.c.br.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if buf[0] != '\r' || buf[1] != '\n' {
		return fmt.Errorf("%w: chunk data not followed by CRLF", ErrMalformedResponse)
	}
	b.c.br.Discard(2)
	b.crlf = false
	return nil
}

// nextChunk reads a chunk-size line. For the last chunk it reads the
// trailer section into resp.Trailer and reports last.
func (b *body) nextChunk() (last bool, err error) {
	c := b.c
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		switch err {
		case io.EOF:
			err = io.ErrUnexpectedEOF
		case bufio.ErrBufferFull:
			err = fmt.Errorf("%w: chunk-size line too long", ErrMalformedResponse)
		}
		return false, err
	}
	// RFC 9112 does not allow a bare LF here (erratum 7633), nor does
	// net/http.
	if len(line) < 2 || line[len(line)-2] != '\r' || bytes.IndexByte(line[:len(line)-2], '\r') >= 0 {
		return false, fmt.Errorf("%w: chunk-size line not ended by CRLF", ErrMalformedResponse)
	}
	line = line[:len(line)-2]
	if len(line) >= maxChunkLine {
		return false, fmt.Errorf("%w: chunk-size line too long", ErrMalformedResponse)
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i] // chunk extensions are ignored
	}
	line = h1lex.TrimOWSBytes(line)
	size, ok := parseHex(line)
	if !ok {
		return false, fmt.Errorf("%w: bad chunk size %.40q", ErrMalformedResponse, line)
	}
	if size > 0 {
		b.remaining = size
		return false, nil
	}
	limit := c.p.t.maxHeaderBytes()
	budget := limit
	tr, err := c.readFields(&budget, limit, nil)
	if err != nil {
		return false, err
	}
	if len(tr) > 0 {
		if b.resp.Trailer == nil {
			b.resp.Trailer = tr
		} else {
			for k, vv := range tr {
				b.resp.Trailer[k] = vv
			}
		}
	}
	return true, nil
}

// parseHex parses a chunk size: 1 to 16 hex digits, at most 2^63-1.
func parseHex(s []byte) (int64, bool) {
	if len(s) == 0 || len(s) > 16 {
		return 0, false
	}
	var n uint64
	for _, c := range s {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(c)
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// drain discards the rest of an unread body if that is cheap, and reports
// whether the connection is then at the start of the next response.
func (b *body) drain() bool {
	if b.closeConn || b.kind == bodyClose {
		return false
	}
	if b.wdone != nil {
		select {
		case <-b.wdone:
		default:
			return false // not reusable anyway
		}
	}
	c := b.c
	if b.kind == bodyLength {
		if b.remaining > maxDrainBytes {
			return false
		}
		if int64(c.br.Buffered()) >= b.remaining {
			_, err := c.br.Discard(int(b.remaining))
			return err == nil
		}
	}
	if c.nc.SetReadDeadline(time.Now().Add(drainTimeout)) != nil {
		return false
	}
	ok := b.discard(maxDrainBytes)
	return c.nc.SetReadDeadline(time.Time{}) == nil && ok
}

func (b *body) discard(budget int64) bool {
	br := b.c.br
	if b.kind == bodyLength {
		if b.remaining > budget {
			return false
		}
		_, err := br.Discard(int(b.remaining))
		return err == nil
	}
	for {
		if b.crlf {
			if b.chunkEnd() != nil {
				return false
			}
		}
		if b.remaining == 0 {
			last, err := b.nextChunk()
			if err != nil {
				return false
			}
			if last {
				return true
			}
			continue
		}
		if b.remaining > budget {
			return false
		}
		if _, err := br.Discard(int(b.remaining)); err != nil {
			return false
		}
		budget -= b.remaining
		b.remaining = 0
		b.crlf = true
	}
}

// upgradeBody is the Body of a 101 response: the connection itself, for
// the protocol the upstream switched to. The connection is not reused.
type upgradeBody struct {
	c    *conn
	once sync.Once
}

func (u *upgradeBody) Read(p []byte) (int, error)  { return u.c.br.Read(p) }
func (u *upgradeBody) Write(p []byte) (int, error) { return u.c.nc.Write(p) }

// Close closes the connection.
func (u *upgradeBody) Close() error {
	u.once.Do(u.c.close)
	return nil
}
