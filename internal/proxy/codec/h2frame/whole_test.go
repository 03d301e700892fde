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
