package h2frame

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// block encodes fields with enc, a connection's encoder.
func block(enc *hpack.Encoder, buf *bytes.Buffer, fields ...hpack.HeaderField) []byte {
	buf.Reset()
	for _, f := range fields {
		_ = enc.WriteField(f)
	}
	return bytes.Clone(buf.Bytes())
}

// framesOf writes header blocks and other frames as a peer would.
type framesOf struct {
	out bytes.Buffer
	fr  *http2.Framer
	hb  bytes.Buffer
	enc *hpack.Encoder
}

func newFrames() *framesOf {
	w := &framesOf{}
	w.fr = http2.NewFramer(&w.out, nil)
	w.enc = hpack.NewEncoder(&w.hb)
	return w
}

// headers writes a header block on stream id, split into frames of at
// most split bytes of fragment (0: one frame).
func (w *framesOf) headers(id uint32, end bool, split int, fields ...hpack.HeaderField) {
	b := block(w.enc, &w.hb, fields...)
	first := b
	if split > 0 && len(b) > split {
		first, b = b[:split], b[split:]
	} else {
		b = nil
	}
	_ = w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(b) == 0})
	for len(b) > 0 {
		n := min(len(b), max(split, 1))
		_ = w.fr.WriteContinuation(id, n == len(b), b[:n])
		b = b[n:]
	}
}

// readAll reads every frame of b with the Framer's own header decoding
// and with a HeaderReader, and describes what each gave.
func readAll(b []byte, maxList uint32) (framer, reader []string) {
	describe := func(f http2.Frame, err error) string {
		var se http2.StreamError
		var ce http2.ConnectionError
		switch {
		case errors.As(err, &se):
			return fmt.Sprintf("stream error %d %v", se.StreamID, se.Code)
		case errors.As(err, &ce):
			return fmt.Sprintf("connection error %v", http2.ErrCode(ce))
		case err != nil:
			return "error"
		}
		if mh, ok := f.(*http2.MetaHeadersFrame); ok {
			return fmt.Sprintf("headers %d end=%v truncated=%v %v", mh.StreamID, mh.StreamEnded(), mh.Truncated, mh.Fields)
		}
		return fmt.Sprintf("%T %d", f, f.Header().StreamID)
	}
	a := http2.NewFramer(nil, bytes.NewReader(b))
	a.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	a.MaxHeaderListSize = maxList
	for {
		f, err := a.ReadFrame()
		framer = append(framer, describe(f, err))
		if err != nil && !errors.As(err, new(http2.StreamError)) {
			break
		}
	}
	z := http2.NewFramer(nil, bytes.NewReader(b))
	var r HeaderReader
	r.Init(hpack.NewDecoder(4096, nil), maxList)
	for {
		f, err := r.ReadFrame(z)
		reader = append(reader, describe(f, err))
		if err != nil && !errors.As(err, new(http2.StreamError)) {
			break
		}
	}
	return framer, reader
}

func hf(name, value string) hpack.HeaderField { return hpack.HeaderField{Name: name, Value: value} }

var request = []hpack.HeaderField{hf(":method", "POST"), hf(":scheme", "http"), hf(":path", "/a.B/C"), hf(":authority", "svc:8080"), hf("content-type", "application/grpc"), hf("te", "trailers")}

// outcomes says what each case of TestHeaderReaderAsTheFramer comes to,
// so that each covers the fault it is named for.
var outcomes = map[string]string{
	"request, then trailers":         `headers 1 end=true truncated=false [header field "grpc-status" = "0"]; headers 3 end=true truncated=false [header field ":method" = "POST"`,
	"CONTINUATION frames":            `header field "x-long"`,
	"upper-case name":                "stream error 1 PROTOCOL_ERROR",
	"invalid value":                  "stream error 1 PROTOCOL_ERROR",
	"pseudo after regular":           "stream error 1 PROTOCOL_ERROR",
	"unknown pseudo":                 "stream error 1 PROTOCOL_ERROR",
	"duplicate pseudo":               "stream error 1 PROTOCOL_ERROR",
	"request and response":           "stream error 1 PROTOCOL_ERROR",
	"over the list size":             "truncated=true",
	"a string over the list size":    "connection error COMPRESSION_ERROR",
	"far over the list size":         "connection error PROTOCOL_ERROR",
	"trailer names counted":          `truncated=false [header field "trailer"`,
	"trailer names over":             "truncated=true []",
	"invalid then CONTINUATION":      "connection error PROTOCOL_ERROR",
	"bad HPACK":                      "connection error COMPRESSION_ERROR",
	"truncated HPACK":                "connection error COMPRESSION_ERROR",
	"CONTINUATION of another stream": "connection error PROTOCOL_ERROR",
	"DATA inside a header block":     "connection error PROTOCOL_ERROR",
}

// The reader gives what the Framer gives, frame for frame and error for
// error, on good header blocks and on each fault the Framer checks.
func TestHeaderReaderAsTheFramer(t *testing.T) {
	cases := map[string]func(w *framesOf){
		"request, then trailers": func(w *framesOf) {
			w.headers(1, false, 0, request...)
			_ = w.fr.WriteData(1, false, []byte("x"))
			w.headers(1, true, 0, hf("grpc-status", "0"))
			w.headers(3, true, 0, request...) // from the dynamic table now
		},
		"CONTINUATION frames": func(w *framesOf) {
			w.headers(1, true, 5, append(request, hf("x-long", strings.Repeat("v", 60)))...)
		},
		"upper-case name":             func(w *framesOf) { w.headers(1, true, 0, append(request, hf("X-Up", "1"))...) },
		"invalid value":               func(w *framesOf) { w.headers(1, true, 0, append(request, hf("x-v", "a\x00b"))...) },
		"pseudo after regular":        func(w *framesOf) { w.headers(1, true, 0, hf("x-a", "1"), hf(":method", "GET")) },
		"unknown pseudo":              func(w *framesOf) { w.headers(1, true, 0, hf(":foo", "1")) },
		"duplicate pseudo":            func(w *framesOf) { w.headers(1, true, 0, hf(":path", "/"), hf(":path", "/b")) },
		"request and response":        func(w *framesOf) { w.headers(1, true, 0, hf(":path", "/"), hf(":status", "200")) },
		"over the list size":          func(w *framesOf) { w.headers(1, true, 0, append(request, hf("x-big", strings.Repeat("b", 150)))...) },
		"a string over the list size": func(w *framesOf) { w.headers(1, true, 0, hf("x-huge", strings.Repeat("h", 900))) },
		"far over the list size": func(w *framesOf) {
			var fields []hpack.HeaderField
			for i := range 10 {
				fields = append(fields, hf(fmt.Sprintf("x-%d", i), strings.Repeat("{", 300)))
			}
			w.headers(1, true, 0, fields...)
		},
		"trailer names counted":     func(w *framesOf) { w.headers(1, true, 0, hf("trailer", "a,b,c,d,e,f,g,h")) },
		"trailer names over":        func(w *framesOf) { w.headers(1, true, 0, hf("trailer", strings.Repeat("a,", 20)+"b")) },
		"invalid then CONTINUATION": func(w *framesOf) { w.headers(1, true, 3, hf("X-Up", "1"), hf("x-a", "1"), hf("x-b", "2")) },
		"bad HPACK": func(w *framesOf) {
			_ = w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xbf, 0xff}, EndHeaders: true})
		},
		"truncated HPACK": func(w *framesOf) {
			_ = w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x40, 0x05, 'a'}, EndHeaders: true})
		},
		"CONTINUATION of another stream": func(w *framesOf) {
			_ = w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}})
			_ = w.fr.WriteContinuation(3, true, []byte{0x84})
		},
		"DATA inside a header block": func(w *framesOf) {
			_ = w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}})
			_ = w.fr.WriteData(1, true, nil)
		},
	}
	for name, write := range cases {
		w := newFrames()
		write(w)
		framer, reader := readAll(w.out.Bytes(), 400)
		if !reflect.DeepEqual(framer, reader) {
			t.Errorf("%s:\nFramer: %q\nreader: %q", name, framer, reader)
		}
		if want := outcomes[name]; want == "" || !strings.Contains(strings.Join(reader, "; "), want) {
			t.Errorf("%s: %q, want %q in it", name, reader, want)
		}
	}
}

// The reader keeps one field slice between blocks and allocates nothing
// per block of fields in its dynamic table but the HEADERS frame the
// Framer parses.
func TestHeaderReaderAllocations(t *testing.T) {
	w := newFrames()
	for id := uint32(1); id < 400; id += 2 {
		w.headers(id, true, 0, request...)
	}
	z := http2.NewFramer(nil, bytes.NewReader(w.out.Bytes()))
	var r HeaderReader
	r.Init(hpack.NewDecoder(4096, nil), 0)
	if _, err := r.ReadFrame(z); err != nil { // fills the dynamic table
		t.Fatal(err)
	}
	a := testing.AllocsPerRun(100, func() {
		f, err := r.ReadFrame(z)
		if err != nil || len(f.(*http2.MetaHeadersFrame).Fields) != len(request) {
			t.Fatalf("%v %v", f, err)
		}
	})
	if a > 1 {
		t.Errorf("%v allocations per header block, want 1", a)
	}
}

// FuzzHeaderReader: on any bytes, the reader gives what the Framer gives.
func FuzzHeaderReader(f *testing.F) {
	w := newFrames()
	w.headers(1, false, 7, request...)
	w.headers(1, true, 0, hf("grpc-status", "0"), hf("X-Up", "1"))
	f.Add(w.out.Bytes(), uint16(256))
	w = newFrames()
	w.headers(1, true, 0, hf("trailer", "a,b"), hf(":path", "/"), hf("x", "\x7f"))
	f.Add(w.out.Bytes(), uint16(64))
	f.Fuzz(func(t *testing.T, b []byte, maxList uint16) {
		framer, reader := readAll(b, uint32(maxList))
		if !reflect.DeepEqual(framer, reader) {
			t.Fatalf("Framer: %q\nreader: %q", framer, reader)
		}
	})
}
