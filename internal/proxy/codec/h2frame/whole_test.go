package h2frame

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
)

func TestWhole(t *testing.T) {
	frame := func(write func(fr *http2.Framer)) []byte {
		var b bytes.Buffer
		write(http2.NewFramer(&b, nil))
		return b.Bytes()
	}
	data := frame(func(fr *http2.Framer) { _ = fr.WriteData(1, false, []byte("hello")) })
	headers := frame(func(fr *http2.Framer) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}, EndHeaders: true})
	})
	continued := frame(func(fr *http2.Framer) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}})
	})
	for _, tc := range []struct {
		name string
		b    []byte
		n    int
		want bool
	}{
		{"whole DATA", data, len(data), true},
		{"DATA and more", append(data, 0, 0), len(data) + 2, true},
		{"DATA short of its payload", data[:len(data)-1], len(data) - 1, false},
		{"a frame header only", data[:HeaderLen], HeaderLen, false},
		{"less than a frame header", data[:4], 4, false},
		{"header block that ends", headers, len(headers), true},
		{"header block that CONTINUATION goes on", continued, len(continued), false},
		{"nothing", nil, 0, false},
	} {
		if got := Whole(tc.b, tc.n); got != tc.want {
			t.Errorf("%s: Whole = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Whole agrees with the library's frame header parser on any bytes: a
// frame is whole when its header and declared payload are all there, and
// it is not a header block that CONTINUATION frames go on.
func FuzzWhole(f *testing.F) {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	_ = fr.WriteData(1, true, []byte("hello"))
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: []byte{0x82}})
	f.Add(b.Bytes())
	f.Add([]byte{0, 0, 0, 1, 4, 0, 0, 0, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got := Whole(b, len(b))
		h, err := http2.ReadFrameHeader(bytes.NewReader(b))
		want := err == nil && len(b) >= HeaderLen+int(h.Length) &&
			!((h.Type == http2.FrameHeaders || h.Type == http2.FramePushPromise) && !h.Flags.Has(http2.FlagHeadersEndHeaders))
		if got != want {
			t.Fatalf("Whole(%x) = %v, want %v", b, got, want)
		}
	})
}
