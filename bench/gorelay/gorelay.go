// Package gorelay is the benchmark's floor for an HTTP/1.1 proxy hop
// written in Go: a relay that does the least a keep-alive proxy must do
// (read a request head, write it upstream with one field added, read the
// response head, copy its Content-Length body back), on the runtime's
// netpoller with one goroutine and one upstream connection per downstream
// connection. Measured next to a meshlens sidecar and HAProxy, it shows
// how much of a hop's cost the Go runtime and the kernel set and how much
// is the proxy's own work.
//
// It is not a proxy to use: it relays requests without a body and
// responses with a Content-Length only, and answers anything else with
// an error status and closes the connection.
package gorelay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// maxHead is the largest request or response head relayed.
const maxHead = 8 << 10

// ioTimeout bounds every read and write of a connection.
const ioTimeout = 30 * time.Second

// Serve accepts on listen and relays each connection to upstream until
// ctx ends.
func Serve(ctx context.Context, listen, upstream string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("gorelay: listen on %s: %w", listen, err)
	}
	return ServeListener(ctx, ln, upstream)
}

// ServeListener relays each connection ln accepts to upstream until ctx
// ends, then closes ln and every connection and returns nil.
func ServeListener(ctx context.Context, ln net.Listener, upstream string) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("gorelay: accept: %w", err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			relay(c, upstream)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}

// Responses the relay sends when it cannot relay.
var (
	badRequest = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	badGateway = []byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
)

// requestID is the field the relay adds to each request, as a mesh hop
// adds its request id.
const requestID = "X-Request-Id: 00000000-0000-4000-8000-000000000000\r\n"

// relay serves one downstream connection.
func relay(c net.Conn, upstream string) {
	defer c.Close()
	br, bw := bufio.NewReaderSize(c, maxHead), bufio.NewWriterSize(c, 16<<10)
	var u net.Conn
	var ubr *bufio.Reader
	var ubw *bufio.Writer
	defer func() {
		if u != nil {
			u.Close()
		}
	}()
	for {
		c.SetDeadline(time.Now().Add(ioTimeout))
		head, err := readHead(br)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.Write(badRequest)
			}
			return
		}
		if n, ok := contentLength(head); !ok || n != 0 || hasField(head, "transfer-encoding") {
			c.Write(badRequest) // a body, or a length that cannot be read
			return
		}
		if u == nil {
			if u, err = net.DialTimeout("tcp", upstream, ioTimeout); err != nil {
				c.Write(badGateway)
				return
			}
			ubr, ubw = bufio.NewReaderSize(u, maxHead), bufio.NewWriterSize(u, maxHead+len(requestID))
		}
		u.SetDeadline(time.Now().Add(ioTimeout))
		ubw.Write(head[:len(head)-2])
		ubw.WriteString(requestID)
		ubw.WriteString("\r\n")
		br.Discard(len(head))
		if ubw.Flush() != nil {
			c.Write(badGateway)
			return
		}
		rhead, err := readHead(ubr)
		if err != nil {
			c.Write(badGateway)
			return
		}
		n, ok := contentLength(rhead)
		if !ok || hasField(rhead, "transfer-encoding") {
			c.Write(badGateway)
			return
		}
		bw.Write(rhead)
		ubr.Discard(len(rhead))
		if _, err := io.CopyN(bw, ubr, n); err != nil {
			return // the head is out: nothing else can be said
		}
		if bw.Flush() != nil {
			return
		}
	}
}

// errHeadTooLarge reports a head over maxHead.
var errHeadTooLarge = errors.New("gorelay: head over 8 KiB")

// readHead returns the head at the front of br (through its empty line),
// still buffered.
func readHead(br *bufio.Reader) ([]byte, error) {
	want := 1
	for {
		if _, err := br.Peek(want); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, errHeadTooLarge
			}
			if want > 1 && errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		b, _ := br.Peek(br.Buffered())
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			return b[:i+4], nil
		}
		want = len(b) + 1
	}
}

// contentLength is the value of the head's Content-Length field, 0 when
// it has none; ok is false when the field is repeated or not a number.
func contentLength(head []byte) (n int64, ok bool) {
	seen := false
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || !bytes.EqualFold(name, []byte("content-length")) {
			continue
		}
		if seen {
			return 0, false
		}
		seen = true
		v, err := strconv.ParseInt(string(bytes.TrimSpace(value)), 10, 64)
		if err != nil || v < 0 {
			return 0, false
		}
		n = v
	}
	return n, true
}

// hasField reports whether the head has a field named name (lower case).
func hasField(head []byte, name string) bool {
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		if n, _, found := bytes.Cut(line, []byte(":")); found && bytes.EqualFold(n, []byte(name)) {
			return true
		}
	}
	return false
}
