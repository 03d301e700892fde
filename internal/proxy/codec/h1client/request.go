package h1client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/h1lex"
)

// conn is one pooled connection to an upstream. It is owned by one
// exchange at a time; while a request body is being sent, the body
// goroutine uses bw and wbuf and the caller uses br.
type conn struct {
	p     *hostPool
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	abort func() // abortExchange, bound once so context.AfterFunc does not allocate it per request
	// ab is the current exchange's context when it took abort through
	// SetAbort; clear is clearAbort, bound once.
	ab     Aborter
	clear  func() bool
	timer  *time.Timer
	idleAt time.Time
	reused bool // it carried a complete exchange before

	lineBuf []byte // a response line longer than br's buffer
	wbuf    []byte // request body copy buffer
	// bufs holds br, bw and wbuf when they come from bufPool (a
	// connection with the default buffer sizes): given back while the
	// connection is idle in the pool, taken again when it is reused.
	bufs   *connBufs
	pooled bool

	// The request body goroutine of the current exchange: werr and
	// wbodyErr are set before wdone is closed.
	wdone    chan struct{}
	werr     error
	wbodyErr bool // werr came from reading the request body
}

// abortExchange runs when the request's context is done: closing the
// connection makes the blocked read or write return.
func (c *conn) abortExchange() { c.nc.Close() }

// Aborter is a request context that runs a function when it is done
// without context.AfterFunc's allocations (the proxy's request context
// is one); the transport uses it when the context has it.
type Aborter interface {
	// SetAbort arranges for f to run once the context is done, and
	// reports false, arranging nothing, when it cannot (the context is
	// done, or holds another function).
	SetAbort(f func()) bool
	// ClearAbort forgets f; it reports false when f has run or is
	// running.
	ClearAbort() bool
}

// clearAbort stops the current exchange's SetAbort, as the stop function
// of context.AfterFunc.
func (c *conn) clearAbort() bool {
	ab := c.ab
	c.ab = nil
	return ab != nil && ab.ClearAbort()
}

// roundTrip runs one exchange on c. retry reports that the request was not
// answered because the upstream had closed a reused connection, so it may
// be sent again on a fresh one. On error, c has been closed.
func (c *conn) roundTrip(ctx context.Context, req *http.Request, hasBody bool) (resp *http.Response, retry bool, err error) {
	var stop func() bool
	if ab, ok := ctx.(Aborter); ok && ab.SetAbort(c.abort) {
		c.ab = ab
		stop = c.clear
	} else if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, c.abort)
	}
	sendBody := hasBody && req.ContentLength != 0
	chunked := sendBody && req.ContentLength < 0
	closeAfter, expect, err := c.writeHead(req, sendBody, chunked)
	if err != nil {
		c.fail(stop)
		if hasBody {
			req.Body.Close()
		}
		return nil, false, err
	}
	if hasBody && !sendBody {
		req.Body.Close()
	}
	c.wdone, c.werr, c.wbodyErr = nil, nil, false
	if sendBody {
		c.wdone = make(chan struct{})
		go c.writeBody(req, chunked, expect || chunked, c.wdone)
	} else if err := c.bw.Flush(); err != nil {
		c.fail(stop)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, false, fmt.Errorf("h1client: write request to %s: %w", c.p.addr, ctxErr)
		}
		return nil, c.reused && !hasBody && isConnGone(err),
			fmt.Errorf("h1client: write request to %s: %w: %w", c.p.addr, ErrNoResponse, err)
	}

	// Whether the upstream sent anything at all decides whether a failed
	// exchange on a reused connection may be retried.
	if _, err := c.br.Peek(1); err != nil {
		c.fail(stop)
		err = c.headError(ctx, err)
		return nil, c.reused && !hasBody && ctx.Err() == nil && errors.Is(err, ErrNoResponse) && isConnGone(err), err
	}
	resp, err = c.readResponse(ctx, req, stop, closeAfter)
	if err != nil {
		c.fail(stop)
		return nil, false, c.headError(ctx, err)
	}
	return resp, false, nil
}

// fail ends a failed exchange: the connection is closed, not reused.
func (c *conn) fail(stop func() bool) {
	if stop != nil {
		stop()
	}
	c.close()
}

// headError explains why no response head could be read.
func (c *conn) headError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("h1client: read response from %s: %w", c.p.addr, ctxErr)
	}
	if c.wdone != nil {
		select {
		case <-c.wdone:
			if c.wbodyErr {
				return c.werr
			}
		default:
		}
	}
	if errors.Is(err, ErrMalformedResponse) {
		return fmt.Errorf("h1client: response from %s: %w", c.p.addr, err)
	}
	return fmt.Errorf("h1client: read response from %s: %w: %w", c.p.addr, ErrNoResponse, err)
}

// writeHead writes the request line and header section into bw. closeAfter
// reports that the request asks the upstream to close the connection;
// expect that it carries an Expect field.
func (c *conn) writeHead(req *http.Request, sendBody, chunked bool) (closeAfter, expect bool, err error) {
	bw := c.bw
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !h1lex.ValidToken(method) {
		return false, false, errors.New("h1client: invalid method " + strconv.Quote(method))
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !validHost(host) {
		return false, false, errors.New("h1client: invalid Host " + strconv.Quote(host))
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	if err := writeRequestURI(bw, req.URL); err != nil {
		return false, false, err
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		case "Connection":
			closeAfter = closeAfter || h1lex.HasToken(vv, "close")
		case "Expect":
			expect = true
		}
		if !h1lex.ValidToken(k) {
			return false, false, errors.New("h1client: invalid header field name " + strconv.Quote(k))
		}
		for _, v := range vv {
			v = h1lex.TrimOWS(v)
			if !h1lex.ValidValue(v) {
				return false, false, errors.New("h1client: invalid value for header field " + strconv.Quote(k))
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch {
	case chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			bw.WriteString("Trailer: ")
			first := true
			for k := range req.Trailer {
				if !h1lex.ValidToken(k) {
					return false, false, errors.New("h1client: invalid trailer field name " + strconv.Quote(k))
				}
				if !first {
					bw.WriteString(", ")
				}
				first = false
				bw.WriteString(k)
			}
			bw.WriteString("\r\n")
		}
	case sendBody:
		b := bw.AvailableBuffer()
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, req.ContentLength, 10)
		b = append(b, '\r', '\n')
		bw.Write(b)
	case method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}
	if req.Close && !closeAfter {
		bw.WriteString("Connection: close\r\n")
		closeAfter = true
	}
	bw.WriteString("\r\n")
	return closeAfter, expect, nil
}

// writeRequestURI writes what u.RequestURI returns without building the
// string.
func writeRequestURI(bw *bufio.Writer, u *url.URL) error {
	if u.Opaque != "" {
		uri := u.RequestURI()
		if !validTarget(uri) {
			return errors.New("h1client: invalid request target " + strconv.Quote(uri))
		}
		bw.WriteString(uri)
		return nil
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if !validTarget(p) || !validTarget(u.RawQuery) {
		return errors.New("h1client: invalid request target " + strconv.Quote(u.RequestURI()))
	}
	bw.WriteString(p)
	if u.ForceQuery || u.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(u.RawQuery)
	}
	return nil
}

// writeBody is the request body goroutine: it sends the body, closes it
// and reports through c.werr and done. When reading the body fails the
// exchange cannot complete, so it closes the connection to unblock the
// response reader.
func (c *conn) writeBody(req *http.Request, chunked, flushFirst bool, done chan struct{}) {
	err, bodyErr := c.copyBody(req, chunked, flushFirst)
	req.Body.Close()
	c.werr, c.wbodyErr = err, bodyErr
	close(done)
	if bodyErr {
		c.nc.Close()
	}
}

// copyBody writes the request body, flushing after every read of it so
// that a streaming upload reaches the upstream as it arrives.
func (c *conn) copyBody(req *http.Request, chunked, flushFirst bool) (err error, bodyErr bool) {
	bw := c.bw
	if flushFirst {
		if err := bw.Flush(); err != nil {
			return err, false
		}
	}
	if c.wbuf == nil {
		c.wbuf = make([]byte, orDefault(c.p.t.WriteBufferSize, DefaultBufferSize))
	}
	buf := c.wbuf
	remaining := req.ContentLength
	for chunked || remaining > 0 {
		p := buf
		if !chunked && int64(len(p)) > remaining {
			p = p[:remaining]
		}
		n, rerr := req.Body.Read(p)
		if n > 0 {
			if chunked {
				h := bw.AvailableBuffer()
				h = strconv.AppendInt(h, int64(n), 16)
				h = append(h, '\r', '\n')
				bw.Write(h)
				bw.Write(p[:n])
				bw.WriteString("\r\n")
			} else {
				bw.Write(p[:n])
				remaining -= int64(n)
			}
			if rerr == nil && (chunked || remaining > 0) {
				if err := bw.Flush(); err != nil {
					return err, false
				}
			}
		}
		if rerr == io.EOF {
			if !chunked && remaining > 0 {
				return fmt.Errorf("h1client: request body is %d bytes shorter than its ContentLength %d", remaining, req.ContentLength), true
			}
			break
		}
		if rerr != nil {
			return fmt.Errorf("h1client: read request body: %w", rerr), true
		}
	}
	if chunked {
		bw.WriteString("0\r\n")
		for k, vv := range req.Trailer {
			if !h1lex.ValidToken(k) {
				return errors.New("h1client: invalid trailer field name " + strconv.Quote(k)), true
			}
			for _, v := range vv {
				v = h1lex.TrimOWS(v)
				if !h1lex.ValidValue(v) {
					return errors.New("h1client: invalid value for trailer field " + strconv.Quote(k)), true
				}
				bw.WriteString(k)
				bw.WriteString(": ")
				bw.WriteString(v)
				bw.WriteString("\r\n")
			}
		}
		bw.WriteString("\r\n")
	}
	if err := bw.Flush(); err != nil {
		return err, false
	}
	return nil, false
}
