package h2frame

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HeaderReader reads frames as a Framer does with its ReadMetaHeaders
// set: a HEADERS frame comes back with its CONTINUATION frames as one
// *http2.MetaHeadersFrame of decoded, checked fields, with the Framer's
// errors for the same faults (RFC 9113 8.2 and 8.3: field names and
// values, pseudo-header fields, the header list's size, HPACK errors).
// Unlike the Framer, it allocates nothing per header block but the
// strings HPACK decodes: the MetaHeadersFrame and its field slice are
// the reader's, reused, and valid only until the next ReadFrame. One
// reader per connection, used by its reader goroutine only, set up with
// Init; the Framer it reads from must have ReadMetaHeaders nil.
type HeaderReader struct {
	dec *hpack.Decoder
	mh  http2.MetaHeadersFrame
	// err is, while a block is decoded, its first invalid field's
	// error; after a ReadFrame that failed here, why.
	err     error
	maxList uint32

	// The header block being decoded.
	headersLeft, trailersLeft uint32
	sawRegular                bool
}

// Init makes r decode with dec (the connection's HPACK state) and
// refuse header lists over maxList bytes (counted as RFC 9113 6.5.2
// does; 0 is the Framer's default, 16 MiB): a longer one comes back
// Truncated, as from the Framer. A reader is used in place (a field of
// its connection), after Init.
func (r *HeaderReader) Init(dec *hpack.Decoder, maxList uint32) {
	if maxList == 0 {
		maxList = 16 << 20
	}
	*r = HeaderReader{dec: dec, maxList: maxList}
	dec.SetEmitFunc(r.emit)
}

// keptFields is the most fields whose slice the reader reuses: a larger
// one (a block with many fields) is let go when the next block starts.
const keptFields = 32

// Release drops what the reader holds between header blocks (the field
// slice, the last HEADERS frame), for a connection that goes idle.
func (r *HeaderReader) Release() {
	r.mh = http2.MetaHeadersFrame{}
}

// ErrorDetail says why the last ReadFrame failed: the reader's reason
// for an error it found, else the Framer's.
func (r *HeaderReader) ErrorDetail(fr *http2.Framer) error {
	if r.err != nil {
		return r.err
	}
	return fr.ErrorDetail()
}

// ReadFrame reads the next frame from fr; see HeaderReader.
func (r *HeaderReader) ReadFrame(fr *http2.Framer) (http2.Frame, error) {
	r.err = nil
	f, err := fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	hf, ok := f.(*http2.HeadersFrame)
	if !ok {
		return f, nil
	}
	return r.readBlock(fr, hf)
}

// Errors of header blocks; the stream's id goes with them as a
// StreamError.
var (
	errPseudoAfterRegular = errors.New("pseudo header field after regular")
	errMixPseudo          = errors.New("mix of request and response pseudo headers")
)

// readBlock decodes the header block that hf starts, reading its
// CONTINUATION frames, as the Framer's readMetaFrame does.
func (r *HeaderReader) readBlock(fr *http2.Framer, hf *http2.HeadersFrame) (http2.Frame, error) {
	if cap(r.mh.Fields) > keptFields {
		r.mh.Fields = nil
	}
	r.mh = http2.MetaHeadersFrame{HeadersFrame: hf, Fields: r.mh.Fields[:0]}
	r.headersLeft, r.trailersLeft = r.maxList, r.maxList
	r.sawRegular, r.err = false, nil
	r.dec.SetEmitEnabled(true)
	r.dec.SetMaxStringLength(int(min(r.maxList, 1<<31-1)))
	var frag []byte
	ended := false
	for f := http2.Frame(hf); ; {
		switch f := f.(type) {
		case *http2.HeadersFrame:
			frag, ended = f.HeaderBlockFragment(), f.HeadersEnded()
		case *http2.ContinuationFrame:
			// The Framer checks that only CONTINUATION frames of
			// this stream follow until the block ends.
			frag, ended = f.HeaderBlockFragment(), f.HeadersEnded()
		}
		// Far more than the list may hold: not decoded at all. A
		// CONTINUATION after an invalid field: the sizes are no
		// longer counted. Either ends the connection, as the Framer
		// has it.
		if int64(len(frag)) > 2*int64(r.headersLeft+r.trailersLeft) {
			r.err = errors.New("header list too large")
			return &r.mh, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if r.err != nil {
			// The invalid field's error says why.
			return &r.mh, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := r.dec.Write(frag); err != nil {
			r.err = fmt.Errorf("hpack: %w", err)
			return &r.mh, http2.ConnectionError(http2.ErrCodeCompression)
		}
		if ended {
			break
		}
		var err error
		if f, err = fr.ReadFrame(); err != nil {
			return nil, err
		}
	}
	if err := r.dec.Close(); err != nil {
		r.err = fmt.Errorf("hpack: %w", err)
		return &r.mh, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if r.err != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: r.err}
	}
	if err := checkPseudos(r.mh.PseudoFields()); err != nil {
		r.err = err
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return &r.mh, nil
}

// emit takes one decoded field of the block being read.
func (r *HeaderReader) emit(f hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(f.Value) {
		// The value is not in the error: it may be sensitive.
		r.err = fmt.Errorf("invalid header field value for %q", f.Name)
	}
	if strings.HasPrefix(f.Name, ":") {
		if r.sawRegular {
			r.err = errPseudoAfterRegular
		}
	} else {
		r.sawRegular = true
		if !validWireName(f.Name) {
			r.err = fmt.Errorf("invalid header field name %q", f.Name)
		}
	}
	if r.err != nil {
		r.dec.SetEmitEnabled(false)
		return
	}
	left, size := &r.headersLeft, f.Size()
	if f.Name == "trailer" {
		// Each name a trailer field announces counts as a field of
		// its own, as the Framer counts it.
		n := uint32(strings.Count(f.Value, ",") + 1)
		left, size = &r.trailersLeft, uint32(len(f.Value))-n+1+n*hpack.HeaderField{}.Size()
	}
	if size > *left {
		r.dec.SetEmitEnabled(false)
		r.mh.Truncated = true
		r.headersLeft, r.trailersLeft = 0, 0
		return
	}
	*left -= size
	r.mh.Fields = append(r.mh.Fields, f)
}

// validWireName reports whether a regular field's name is a token
// without upper case (RFC 9113 8.2.1).
func validWireName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !httpguts.IsTokenRune(rune(c)) || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// checkPseudos checks a block's pseudo-header fields: known ones, none
// twice, not a request's and a response's together.
func checkPseudos(pf []hpack.HeaderField) error {
	var request, response bool
	for i, f := range pf {
		switch f.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return fmt.Errorf("invalid pseudo-header %q", f.Name)
		}
		for _, g := range pf[:i] {
			if f.Name == g.Name {
				return fmt.Errorf("duplicate pseudo-header %q", f.Name)
			}
		}
	}
	if request && response {
		return errMixPseudo
	}
	return nil
}
