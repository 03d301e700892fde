package grpcweb

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
)

// chunkSize is the most the response translator reads from its source at
// once; textChunk the most the text decoder does.
const (
	chunkSize = 16 << 10
	textChunk = 4 << 10
)

// ErrBadText is returned (wrapped) for a gRPC-Web text body that is not
// base64.
var ErrBadText = errors.New("grpc-web-text body is not valid base64")

// RequestBody wraps a gRPC-Web request body as the gRPC request body: the
// body itself when binary, a streaming base64 decoder when text. A text
// body that is not base64 makes Read fail with an error wrapping
// ErrBadText; Envoy answers such a request 400 ("Bad gRPC-web request,
// invalid base64 data."), which a caller can do while nothing has been
// sent downstream, and otherwise resets the stream.
func (s Stream) RequestBody(body io.Reader) io.Reader {
	if !s.textRequest {
		return body
	}
	return NewTextDecoder(body)
}

// NewTextDecoder decodes a gRPC-Web text stream: base64 in 4-character
// quanta, each of which may carry padding, so concatenated padded chunks
// decode to the concatenation of their bytes. CR and LF are skipped. A
// stream that ends inside a quantum, or holds a character outside the
// base64 alphabet, is an error wrapping ErrBadText.
func NewTextDecoder(r io.Reader) io.Reader {
	return &textDecoder{src: r}
}

type textDecoder struct {
	src  io.Reader
	in   [textChunk]byte
	out  [textChunk/4*3 + 3]byte
	pend []byte // decoded, not yet returned
	quad [4]byte
	nq   int
	err  error
}

func (d *textDecoder) Read(p []byte) (int, error) {
	for len(d.pend) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		n, err := d.src.Read(d.in[:])
		out, derr := d.decode(d.in[:n])
		d.pend = out
		switch {
		case derr != nil:
			d.err = derr
		case err == io.EOF && d.nq != 0:
			d.err = errors.Join(ErrBadText, io.ErrUnexpectedEOF)
		case err != nil:
			d.err = err
		}
	}
	n := copy(p, d.pend)
	d.pend = d.pend[n:]
	return n, nil
}

// decode decodes in into d.out, carrying a partial quantum over.
func (d *textDecoder) decode(in []byte) ([]byte, error) {
	out := d.out[:0]
	for _, c := range in {
		if c == '\r' || c == '\n' {
			continue
		}
		d.quad[d.nq] = c
		d.nq++
		if d.nq < 4 {
			continue
		}
		d.nq = 0
		var buf [3]byte
		n, err := base64.StdEncoding.Decode(buf[:], d.quad[:])
		if err != nil {
			return out, errors.Join(ErrBadText, err)
		}
		out = append(out, buf[:n]...)
	}
	return out, nil
}

// ResponseBody wraps the upstream's gRPC response body as the gRPC-Web
// response body: the messages, then the trailers that trailer returns
// once body has reached EOF (for a net/http client response,
// func() http.Header { return resp.Trailer }), as a trailer frame; all
// base64-encoded, chunk by chunk, for a text response. No trailer frame is
// written when there are no trailers (a trailers-only response carried
// grpc-status in its headers). A read error other than EOF is returned as
// is and no trailers are written: the call failed, and the caller resets
// the downstream stream. A zero Stream returns body.
func (s Stream) ResponseBody(body io.Reader, trailer func() http.Header) io.Reader {
	if !s.web {
		return body
	}
	return &responseBody{src: body, trailer: trailer, text: s.textResponse}
}

type responseBody struct {
	src     io.Reader
	trailer func() http.Header
	text    bool
	eof     bool // src is done; trailers appended to pend
	err     error
	in      []byte
	pend    []byte
	enc     []byte
}

func (r *responseBody) Read(p []byte) (int, error) {
	for len(r.pend) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		if r.err != nil {
			return 0, r.err
		}
		if !r.text {
			// Binary: read straight into p, no copy.
			n, err := r.src.Read(p)
			r.note(err)
			if n > 0 {
				return n, nil
			}
			continue
		}
		if r.in == nil {
			r.in = make([]byte, chunkSize)
		}
		n, err := r.src.Read(r.in)
		if n > 0 {
			r.enc = r.encode(r.enc[:0], r.in[:n])
			r.pend = r.enc
		}
		r.note(err)
	}
	n := copy(p, r.pend)
	r.pend = r.pend[n:]
	return n, nil
}

// note records a source error; at EOF it queues the trailer frame.
func (r *responseBody) note(err error) {
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		r.eof = true
		var t http.Header
		if r.trailer != nil {
			t = r.trailer()
		}
		if len(t) == 0 {
			return
		}
		frame := AppendTrailerFrame(nil, t)
		if r.text {
			r.pend = r.encode(r.pend, frame)
		} else {
			r.pend = append(r.pend, frame...)
		}
	default:
		r.err = err
	}
}

func (r *responseBody) encode(dst, src []byte) []byte {
	return base64.StdEncoding.AppendEncode(dst, src)
}

// AppendTrailerFrame appends trailers t as a gRPC-Web trailer frame: flag
// 0x80, a 4-byte big-endian length, then "name:value\r\n" for every value,
// names lower-cased and sorted (for a stable wire form).
func AppendTrailerFrame(dst []byte, t http.Header) []byte {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var block []byte
	for _, k := range keys {
		lk := strings.ToLower(k)
		for _, v := range t[k] {
			block = append(block, lk...)
			block = append(block, ':')
			block = append(block, v...)
			block = append(block, '\r', '\n')
		}
	}
	return AppendFrame(dst, FlagTrailer, block)
}
