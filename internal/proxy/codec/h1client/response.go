package h1client

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/meshlens/meshlens/internal/proxy/codec/h1lex"
)

// max1xx bounds the interim responses skipped before a final one, as
// net/http does.
const max1xx = 5

// framing is what the header section says about the message body and
// the connection.
type framing struct {
	contentLength int64 // -1 when absent
	te            int   // Transfer-Encoding field lines
	teChunked     bool  // the first one says chunked
	connClose     bool
	keepAlive     bool
}

// response is a Response allocated together with its body.
type response struct {
	resp http.Response
	body body
}

// readResponse reads response heads until a final one (or a 101) and
// sets up its body. The connection's release is the body's job from then
// on.
func (c *conn) readResponse(ctx context.Context, req *http.Request, stop func() bool, closeAfter bool) (*http.Response, error) {
	limit := c.p.t.maxHeaderBytes()
	r := new(response)
	resp := &r.resp
	var f framing
	for n := 0; ; n++ {
		f = framing{contentLength: -1}
		if err := c.readHead(resp, &f, limit); err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if n == max1xx {
			return nil, fmt.Errorf("%w: more than %d interim responses", ErrMalformedResponse, max1xx)
		}
	}
	resp.Request = req
	if c.lineBuf != nil && cap(c.lineBuf) > 64<<10 {
		c.lineBuf = nil
	}

	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection now belongs to the caller, as with net/http.
		if stop != nil {
			stop()
		}
		resp.ContentLength = 0 // as net/http reports it
		resp.Close = true
		resp.Body = &upgradeBody{c: c}
		return resp, nil
	}

	if err := checkFraming(resp, &f); err != nil {
		return nil, err
	}

	b := &r.body
	b.c, b.resp, b.ctx, b.stop, b.wdone = c, resp, ctx, stop, c.wdone
	resp.Close = f.connClose || (resp.ProtoMinor == 0 && !f.keepAlive)
	b.closeConn = resp.Close || closeAfter
	resp.ContentLength = f.contentLength

	noBody := req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent ||
		resp.StatusCode == http.StatusNotModified
	switch {
	case noBody:
		// net/http's ContentLength for a HEAD response is the declared
		// length of the GET it stands for.
		if req.Method != http.MethodHead {
			resp.ContentLength = 0
		}
	case f.teChunked:
		b.kind = bodyChunked
		resp.ContentLength = -1
	case f.contentLength > 0:
		b.kind = bodyLength
		b.remaining = f.contentLength
	case f.contentLength == 0:
	default:
		b.kind = bodyClose
		resp.Close = true
		b.closeConn = true
	}
	if b.kind == bodyNone {
		b.done, b.err = true, io.EOF
		b.finish(true)
		resp.Body = http.NoBody
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// checkFraming refuses the response framings RFC 9112 does not allow
// and sets up the trailers a chunked response declares.
func checkFraming(resp *http.Response, f *framing) error {
	if f.te > 0 {
		switch {
		case resp.ProtoMinor == 0:
			return fmt.Errorf("%w: Transfer-Encoding in an HTTP/1.0 response", ErrMalformedResponse)
		case f.te > 1 || !f.teChunked:
			return fmt.Errorf("%w: unsupported Transfer-Encoding", ErrMalformedResponse)
		case f.contentLength >= 0:
			return fmt.Errorf("%w: both Content-Length and Transfer-Encoding", ErrMalformedResponse)
		}
		resp.TransferEncoding = []string{"chunked"}
	}
	if vv, ok := resp.Header["Trailer"]; ok && f.teChunked {
		delete(resp.Header, "Trailer")
		tr, err := declaredTrailers(vv)
		if err != nil {
			return err
		}
		resp.Trailer = tr
	}
	return nil
}

// declaredTrailers turns the Trailer field's values into a Header with
// the declared names and nil values, to be filled at the end of the body.
func declaredTrailers(vv []string) (http.Header, error) {
	tr := make(http.Header)
	for _, v := range vv {
		for len(v) > 0 {
			var name string
			if i := strings.IndexByte(v, ','); i >= 0 {
				name, v = v[:i], v[i+1:]
			} else {
				name, v = v, ""
			}
			name = h1lex.TrimOWS(name)
			if name == "" {
				continue
			}
			if !h1lex.ValidToken(name) {
				// Not a name, so no trailer field can match it;
				// net/http does not refuse the response either.
				continue
			}
			name = http.CanonicalHeaderKey(name)
			switch name {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return nil, fmt.Errorf("%w: %s declared as a trailer", ErrMalformedResponse, name)
			}
			tr[name] = nil
		}
	}
	if len(tr) == 0 {
		return nil, nil
	}
	return tr, nil
}

// readHead reads a status line and its header section into resp.
func (c *conn) readHead(resp *http.Response, f *framing, limit int) error {
	budget := limit
	line, err := c.readLine(&budget, limit)
	if err != nil {
		return err
	}
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' {
		if len(line) > 5 && string(line[:5]) == "HTTP/" && bytes.IndexByte(line, ' ') > 5 && !bytes.HasPrefix(line, []byte("HTTP/1.0 ")) && !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
			return fmt.Errorf("%w: unsupported version in status line %.80q", ErrMalformedResponse, line)
		}
		return fmt.Errorf("%w: bad status line %.80q", ErrMalformedResponse, line)
	}
	d0, d1, d2 := line[9], line[10], line[11]
	if d0 < '1' || d0 > '9' || d1 < '0' || d1 > '9' || d2 < '0' || d2 > '9' ||
		(len(line) > 12 && line[12] != ' ') || !h1lex.ValidValueBytes(line[12:]) {
		return fmt.Errorf("%w: bad status line %.80q", ErrMalformedResponse, line)
	}
	resp.StatusCode = int(d0-'0')*100 + int(d1-'0')*10 + int(d2-'0')
	if s, ok := commonStatus[string(line[9:])]; ok {
		resp.Status = s
	} else {
		resp.Status = string(line[9:])
	}
	if line[7] == '1' {
		resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	} else {
		resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.0", 1, 0
	}
	resp.Header, err = c.readFields(&budget, limit, f)
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	return err
}

// readLine returns the next line without its line ending (CRLF or a bare
// LF, as net/http accepts), charging it to budget. The slice is valid
// until the next read from br.
func (c *conn) readLine(budget *int, limit int) ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		c.lineBuf = append(c.lineBuf[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(c.lineBuf) > *budget {
				return nil, errHeadTooLarge(limit)
			}
			line, err = c.br.ReadSlice('\n')
			c.lineBuf = append(c.lineBuf, line...)
		}
		line = c.lineBuf
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if *budget -= len(line); *budget < 0 {
		return nil, errHeadTooLarge(limit)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func errHeadTooLarge(limit int) error {
	return fmt.Errorf("%w: response head larger than MaxResponseHeaderBytes (%d)", ErrMalformedResponse, limit)
}

// readFields reads field lines up to the empty line. With f set it is a
// header section: Transfer-Encoding is taken out of the map into f, and
// Content-Length and Connection are checked and noted in f. Without f it
// is a trailer section and every field goes into the map. It returns nil
// when there are no fields.
func (c *conn) readFields(budget *int, limit int, f *framing) (http.Header, error) {
	var h http.Header
	var strs []string
	for {
		line, err := c.readLine(budget, limit)
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			return h, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return h, fmt.Errorf("%w: obsolete line folding or leading whitespace in %.80q", ErrMalformedResponse, line)
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return h, fmt.Errorf("%w: field line without colon %.80q", ErrMalformedResponse, line)
		}
		name := line[:colon]
		if !h1lex.ValidTokenBytes(name) {
			return h, fmt.Errorf("%w: invalid field name %.80q", ErrMalformedResponse, name)
		}
		v := h1lex.TrimOWSBytes(line[colon+1:])
		if !h1lex.ValidValueBytes(v) {
			return h, fmt.Errorf("%w: invalid value in field %.80q", ErrMalformedResponse, name)
		}
		key := h1lex.CanonicalKey(name)
		if h == nil {
			n := c.upcomingFields()
			h = make(http.Header, n)
			strs = make([]string, n)
		}
		if f != nil {
			switch key {
			case "Transfer-Encoding":
				f.te++
				if f.te == 1 {
					f.teChunked = h1lex.EqualFold(v, "chunked")
				}
				continue
			case "Content-Length":
				n, ok := parseContentLength(v)
				if !ok {
					return h, fmt.Errorf("%w: invalid Content-Length %.40q", ErrMalformedResponse, v)
				}
				if f.contentLength >= 0 {
					if h["Content-Length"][0] != string(v) {
						return h, fmt.Errorf("%w: conflicting Content-Length values", ErrMalformedResponse)
					}
					continue
				}
				f.contentLength = n
			case "Connection":
				connectionTokens(v, f)
			}
		}
		value := h1lex.Value(v)
		if vv, ok := h[key]; ok {
			h[key] = append(vv, value)
		} else if len(strs) > 0 {
			vv, strs = strs[:1:1], strs[1:]
			vv[0] = value
			h[key] = vv
		} else {
			h[key] = []string{value}
		}
	}
}

// upcomingFields estimates the number of field lines already buffered,
// to size the header map and its value slices in one allocation each.
func (c *conn) upcomingFields() int {
	buf, _ := c.br.Peek(c.br.Buffered())
	n := 1
	for len(buf) > 0 && n < 100 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		if i == 0 || (i == 1 && buf[0] == '\r') {
			break
		}
		n++
		buf = buf[i+1:]
	}
	return n
}

// parseContentLength accepts what net/http accepts: decimal digits only,
// at most 2^63-1.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	var n uint64
	for _, b := range v {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + uint64(b-'0')
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// connectionTokens notes the close and keep-alive options of a
// Connection field value.
func connectionTokens(v []byte, f *framing) {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = h1lex.TrimOWSBytes(tok)
		if h1lex.EqualFold(tok, "close") {
			f.connClose = true
		} else if h1lex.EqualFold(tok, "keep-alive") {
			f.keepAlive = true
		}
	}
}
