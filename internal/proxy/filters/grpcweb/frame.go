package grpcweb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Frame flag bits (the first byte of every frame).
const (
	FlagCompressed = 0x01
	FlagTrailer    = 0x80
)

// DefaultMaxFrame bounds a frame's payload in ReadFrame when the caller
// gives no bound: gRPC's default maximum message size.
const DefaultMaxFrame = 4 << 20

// Frame is one length-prefixed gRPC-Web frame.
type Frame struct {
	Flags   byte
	Payload []byte
}

// Trailer reports whether the frame holds trailers.
func (f Frame) Trailer() bool { return f.Flags&FlagTrailer != 0 }

// Compressed reports whether the payload is compressed.
func (f Frame) Compressed() bool { return f.Flags&FlagCompressed != 0 }

// ErrFrameTooLarge is returned (wrapped) for a frame over the bound.
var ErrFrameTooLarge = errors.New("grpc-web frame larger than allowed")

// AppendFrame appends a frame with flags and payload to dst.
func AppendFrame(dst []byte, flags byte, payload []byte) []byte {
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// ReadFrame reads one frame from r (binary; wrap a text body in
// NewTextDecoder first). max bounds the payload (0: DefaultMaxFrame). At a
// clean end between frames it returns io.EOF; inside a frame,
// io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader, max int) (Frame, error) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(max) {
		return Frame{}, fmt.Errorf("%w: %d bytes, bound %d", ErrFrameTooLarge, n, max)
	}
	f := Frame{Flags: hdr[0], Payload: make([]byte, n)}
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return f, nil
}

// ParseTrailer parses a trailer frame's payload: "name:value" lines ending
// in CRLF (a bare LF and a missing final line end are accepted), names
// case-insensitive, values trimmed. A line without a colon or with an
// invalid name or value is an error.
func ParseTrailer(p []byte) (http.Header, error) {
	h := http.Header{}
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	sc.Buffer(make([]byte, 0, 4096), len(p)+1)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("grpc-web trailer line %q: no colon", line)
		}
		name = strings.TrimSpace(name)
		value = strings.TrimSpace(value)
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("grpc-web trailer name %q: invalid", name)
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, fmt.Errorf("grpc-web trailer %s: invalid value", name)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(name), value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("grpc-web trailer: %w", err)
	}
	return h, nil
}
