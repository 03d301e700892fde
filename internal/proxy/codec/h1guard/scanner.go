package h1guard

import (
	"bytes"

	"github.com/meshlens/meshlens/internal/proxy/codec/h1lex"
)

// state is where the scanner is in the request stream.
type state uint8

// States of the head (request line and field lines) and of a chunked
// trailer; their bytes count against the head budget. They sort before
// stBody.
const (
	stRequest      state = iota // before the method; skips CR/LF after a POST
	stMethod                    // method token
	stTarget                    // request-target, up to the second SP
	stVersion                   // "HTTP/1.x"
	stVersionCR                 // CR after the version
	stLineStart                 // first byte of a field line, or of the empty line
	stEndCR                     // CR at the start of a line
	stName                      // a field name that may be a framing field
	stSkipLine                  // the rest of a line that does not affect framing
	stCLValue                   // a Content-Length value
	stCLValueCR                 // CR inside a Content-Length line
	stFold                      // leading SP/HT of an obs-fold continuation line
	stFoldName                  // a continuation line that may start with a framing field name
	stTrailerStart              // first byte of a trailer line, or of the empty line
	stTrailerCR                 // CR at the start of a trailer line
	stTrailerLine               // the rest of a trailer line
)

// Body states, and the two transitions out of a head or trailer.
const (
	stBody        state = iota + 32 // Content-Length bytes
	stChunkSize                     // hex digits of a chunk size
	stChunkSizeWS                   // SP/HT after the chunk size
	stChunkExt                      // chunk extensions, up to CR
	stChunkSizeLF                   // LF ending a chunk-size line
	stChunkData                     // chunk bytes
	stChunkDataCR                   // CR after chunk data
	stChunkDataLF                   // LF after chunk data
	stHeadEnd                       // the head just ended
	stTrailerEnd                    // the trailer just ended
	stDone                          // not inspecting any more
)

// field is the kind of the current field line.
type field uint8

const (
	fieldNone  field = iota // no field line yet
	fieldOther              // a field that does not affect framing
	fieldCL                 // Content-Length
	fieldTE                 // Transfer-Encoding
)

// names are the framing field names, lower case.
var names = [...]string{fieldCL: "content-length", fieldTE: "transfer-encoding"}

// Per-request flags.
const (
	flagPost   uint8 = 1 << iota // the method is exactly "POST"
	flagHTTP10                   // HTTP/1.0
	flagCL                       // a Content-Length field was seen
	flagTE                       // a Transfer-Encoding field was seen
	flagCLVal                    // clVal holds the first Content-Length value
	flagCLBad                    // a Content-Length value net/http refuses
)

// Progress of a Content-Length value.
const (
	clPre    uint8 = iota // before the digits
	clDigits              // in the digits
	clPost                // after the digits: only SP/HT may follow
	clBad                 // not a value net/http accepts
)

// postCRLF is how many CR or LF bytes net/http discards before the
// request that follows a POST (its "RFC 7230 section 3 tolerance for old
// buggy clients": it peeks 4 bytes and skips the leading CR/LF ones).
const postCRLF = 4

// scanner follows the framing of a stream of HTTP/1.x requests the way
// net/http's server parses it, byte by byte, so that any split of the
// stream into reads gives the same result. Its zero value is not usable;
// call init.
type scanner struct {
	remain uint64 // body or chunk bytes left to skip
	curVal uint64 // the Content-Length value being read
	clVal  uint64 // the first Content-Length value
	limit  int64  // head (or trailer) bytes inspected before giving up
	budget int64  // what is left of limit in the current head or trailer
	nreq   uint64 // requests started, the current one included
	reason error  // why the scanner just rejected a request; reported once
	curLen uint32 // digits in curVal, leading zeros included
	clLen  uint32 // digits in clVal
	st     state
	field  field // the current field line, for obs-fold continuations
	cand   field // the framing field a name is being matched against
	idx    uint8 // bytes matched of a method, version or name
	flags  uint8
	clst   uint8 // progress of curVal
	crlf   uint8 // CR/LF bytes that may still be skipped before the method
	digits uint8 // hex digits of the chunk size read so far
}

func (s *scanner) init(limit int64) {
	s.limit = limit
	s.startRequest(false)
}

// startRequest expects the next request line.
func (s *scanner) startRequest(afterPost bool) {
	s.st = stRequest
	s.budget = s.limit
	s.nreq++
	s.flags = 0
	s.field = fieldNone
	s.clVal, s.clLen = 0, 0
	s.crlf = 0
	if afterPost {
		s.crlf = postCRLF
	}
}

// reject makes net/http refuse the request whose framing field name ends
// with the ':' at p[i]: without its colon the line is not a field line
// (or, in a continuation line, the folded value holds a control byte),
// and net/http answers 400 and closes the connection. Nothing after it
// matters, so the scanner stops.
func (s *scanner) reject(p []byte, i int, why error) {
	p[i] = 0
	s.reason = why
	s.st = stDone
}

// scan inspects p, the next bytes of the stream, and may overwrite one of
// them to reject a request.
func (s *scanner) scan(p []byte) {
	for i := 0; i < len(p); {
		switch {
		case s.st < stBody:
			end := len(p)
			if int64(end-i) > s.budget {
				end = i + int(s.budget)
			}
			j := s.head(p[:end], i)
			s.budget -= int64(j - i)
			i = j
			if s.st < stBody && s.budget == 0 {
				s.st = stDone // net/http answers 431
			}
		case s.st == stBody || s.st == stChunkData:
			n := uint64(len(p) - i)
			if s.remain > n {
				s.remain -= n
				return
			}
			i += int(s.remain)
			s.remain = 0
			if s.st == stBody {
				s.startRequest(s.flags&flagPost != 0)
			} else {
				s.st = stChunkDataCR
			}
		case s.st == stHeadEnd:
			s.endHead()
		case s.st == stTrailerEnd:
			s.startRequest(s.flags&flagPost != 0)
		case s.st == stDone:
			return
		default:
			i = s.chunkLine(p, i)
		}
	}
	// A head or trailer that ends on the last byte is settled now, so that
	// the state never depends on where reads split the stream.
	switch s.st {
	case stHeadEnd:
		s.endHead()
	case stTrailerEnd:
		s.startRequest(s.flags&flagPost != 0)
	}
}

// endHead chooses the body framing net/http will apply.
func (s *scanner) endHead() {
	s.endField()
	switch {
	case s.flags&flagTE != 0:
		// net/http frames by chunked if the value is exactly "chunked",
		// and otherwise answers 501 and closes.
		s.st = stChunkSize
		s.remain, s.digits = 0, 0
	case s.flags&flagCLBad != 0:
		s.st = stDone // net/http answers 400
	case s.clVal > 0:
		s.st = stBody
		s.remain = s.clVal
	default:
		// No body; an empty Content-Length is refused by net/http, or
		// read as no body under GODEBUG=httplaxcontentlength=1.
		s.startRequest(s.flags&flagPost != 0)
	}
}

// endField settles the field line that just ended.
func (s *scanner) endField() {
	if s.field != fieldCL {
		return
	}
	s.field = fieldOther
	if s.clst == clBad {
		s.flags |= flagCLBad
		return
	}
	// net/http compares repeated values as trimmed strings: the same
	// value with a different number of leading zeros is a conflict.
	if s.flags&flagCLVal == 0 {
		s.flags |= flagCLVal
		s.clVal, s.clLen = s.curVal, s.curLen
	} else if s.curVal != s.clVal || s.curLen != s.clLen {
		s.flags |= flagCLBad
	}
}

// framingField notes a Content-Length or Transfer-Encoding field whose
// name ends at p[i], and rejects the request if it makes the framing
// ambiguous.
func (s *scanner) framingField(p []byte, i int) {
	if s.field == fieldTE {
		if s.flags&flagHTTP10 != 0 {
			s.reject(p, i, ErrTransferEncodingHTTP10)
			return
		}
		s.flags |= flagTE
	} else {
		s.flags |= flagCL
	}
	if s.flags&(flagCL|flagTE) == flagCL|flagTE {
		s.reject(p, i, ErrContentLengthAndTransferEncoding)
	}
}

// head scans p[i:] while in a head or trailer state and returns the index
// of the first byte it did not consume. It returns early when the head or
// trailer ends (st is then stHeadEnd or stTrailerEnd), or when it stops.
//
// It is long on purpose: one loop over one switch on the state, byte by
// byte, over every byte of every request head the proxy receives. A
// function per state would add a call per byte on the request path, and
// the states share the loop's locals; each case is short and commented.
func (s *scanner) head(p []byte, i int) int {
	for i < len(p) {
		b := p[i]
		switch s.st {
		case stRequest:
			if s.crlf > 0 && (b == '\r' || b == '\n') {
				s.crlf--
				i++
				continue
			}
			if !h1lex.TokenByte(b) {
				// Not a request: an HTTP/2 frame, TLS, a tunnel's data,
				// or garbage net/http refuses.
				s.st = stDone
				return i
			}
			s.st = stMethod
			s.idx = 0

		case stMethod:
			for ; i < len(p); i++ {
				b = p[i]
				if b == ' ' {
					break
				}
				if !h1lex.TokenByte(b) {
					s.st = stDone
					return i
				}
				if s.idx < 4 && b == "POST"[s.idx] {
					s.idx++
				} else {
					s.idx = 5
				}
			}
			if i == len(p) {
				return i
			}
			if s.idx == 4 {
				s.flags |= flagPost
			}
			s.st = stTarget
			i++

		case stTarget:
			rest := p[i:]
			j := bytes.IndexByte(rest, ' ')
			if j >= 0 {
				rest = rest[:j]
			}
			if bytes.IndexByte(rest, '\n') >= 0 {
				s.st = stDone // no version: net/http answers 400
				return i
			}
			if j < 0 {
				return len(p)
			}
			i += j + 1
			s.st = stVersion
			s.idx = 0

		case stVersion:
			// net/http serves HTTP/1.x only ("PRI * HTTP/2.0" is the
			// HTTP/2 preface); the version runs to the end of the line.
			ok := true
			switch {
			case s.idx < 5:
				ok = b == "HTTP/"[s.idx]
			case s.idx == 5:
				ok = b == '1'
			case s.idx == 6:
				ok = b == '.'
			case s.idx == 7:
				ok = '0' <= b && b <= '9'
				if b == '0' {
					s.flags |= flagHTTP10
				}
			case b == '\r':
				s.st = stVersionCR
			case b == '\n':
				s.st = stLineStart
			default:
				ok = false
			}
			if !ok {
				s.st = stDone
				return i
			}
			s.idx++
			i++

		case stVersionCR:
			if b != '\n' {
				s.st = stDone
				return i
			}
			s.st = stLineStart
			i++

		case stLineStart:
			if b == ' ' || b == '\t' {
				if s.field == fieldNone {
					s.st = stDone // net/http refuses a leading continuation
					return i
				}
				s.st = stFold
				i++
				continue
			}
			s.endField()
			switch b {
			case '\n':
				s.st = stHeadEnd
				return i + 1
			case '\r':
				s.st = stEndCR
				i++
				continue
			}
			switch lower(b) {
			case 'c':
				s.cand = fieldCL
			case 't':
				s.cand = fieldTE
			default:
				s.field = fieldOther
				s.st = stSkipLine
				continue
			}
			s.field = fieldOther
			s.idx = 1
			s.st = stName
			i++

		case stEndCR:
			if b != '\n' {
				s.st = stDone // a field name starting with CR
				return i
			}
			s.st = stHeadEnd
			return i + 1

		case stName:
			name := names[s.cand]
			if int(s.idx) < len(name) {
				if lower(b) == name[s.idx] {
					s.idx++
					i++
					continue
				}
				s.st = stSkipLine
				continue
			}
			if b != ':' {
				s.st = stSkipLine
				continue
			}
			s.field = s.cand
			s.framingField(p, i)
			if s.st == stDone {
				return i
			}
			i++
			if s.field == fieldCL {
				s.st = stCLValue
				s.clst = clPre
				s.curVal, s.curLen = 0, 0
			} else {
				// net/http frames by chunked whatever the value says, or
				// refuses the request.
				s.st = stSkipLine
			}

		case stSkipLine:
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				return len(p)
			}
			i += j + 1
			s.st = stLineStart

		case stCLValue:
			i = s.clValue(p, i)

		case stCLValueCR:
			if b == '\n' {
				s.st = stLineStart
				i++
				continue
			}
			s.clst = clBad // a bare CR is not a value byte
			s.st = stCLValue

		case stFold:
			if b == ' ' || b == '\t' {
				i++
				continue
			}
			switch s.field {
			case fieldCL:
				// The fold joins the lines with a space.
				if s.clst == clDigits {
					s.clst = clPost
				}
				s.st = stCLValue
				continue
			case fieldTE:
				s.st = stSkipLine
				continue
			}
			switch lower(b) {
			case 'c':
				s.cand = fieldCL
			case 't':
				s.cand = fieldTE
			default:
				s.st = stSkipLine
				continue
			}
			s.idx = 1
			s.st = stFoldName
			i++

		case stFoldName:
			name := names[s.cand]
			if int(s.idx) < len(name) {
				if lower(b) == name[s.idx] {
					s.idx++
					i++
					continue
				}
				s.st = stSkipLine
				continue
			}
			switch b {
			case ' ', '\t':
				i++
			case ':':
				s.reject(p, i, ErrFoldedFramingField)
				return i
			default:
				s.st = stSkipLine
			}

		case stTrailerStart:
			switch b {
			case '\n':
				s.st = stTrailerEnd
				return i + 1
			case '\r':
				s.st = stTrailerCR
				i++
			default:
				s.st = stTrailerLine
			}

		case stTrailerCR:
			if b == '\n' {
				s.st = stTrailerEnd
				return i + 1
			}
			s.st = stTrailerLine

		case stTrailerLine:
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				return len(p)
			}
			i += j + 1
			s.st = stTrailerStart

		default:
			return i
		}
	}
	return i
}
