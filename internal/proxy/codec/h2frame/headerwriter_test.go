package h2frame

import (
	"bytes"
	"reflect"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// writtenBlocks writes each field list with w as a HEADERS frame (and
// CONTINUATION frames past maxFrame) and returns each header block as
// the peer reassembles it.
func writtenBlocks(t *testing.T, w *HeaderWriter, maxFrame uint32, lists ...[]hpack.HeaderField) [][]byte {
	t.Helper()
	var out bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	for i, fields := range lists {
		w.Write(fr, uint32(2*i+1), fields, true, maxFrame)
	}
	rd := http2.NewFramer(nil, &out)
	var blocks [][]byte
	var cur []byte
	for out.Len() > 0 {
		f, err := rd.ReadFrame()
		if err != nil {
			t.Fatalf("read frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			cur = append([]byte(nil), f.HeaderBlockFragment()...)
			if f.HeadersEnded() {
				blocks = append(blocks, cur)
			}
		case *http2.ContinuationFrame:
			cur = append(cur, f.HeaderBlockFragment()...)
			if f.HeadersEnded() {
				blocks = append(blocks, cur)
			}
		default:
			t.Fatalf("unexpected frame %v", f)
		}
	}
	if len(blocks) != len(lists) {
		t.Fatalf("%d header blocks, want %d", len(blocks), len(lists))
	}
	return blocks
}

// decodeAlone decodes a header block with a decoder of its own.
func decodeAlone(t *testing.T, block []byte) []hpack.HeaderField {
	t.Helper()
	dec := hpack.NewDecoder(4096, nil)
	fields, err := dec.DecodeFull(block)
	if err != nil {
		t.Fatalf("decode a header block alone: %v", err)
	}
	return fields
}

var responseFields = []hpack.HeaderField{
	{Name: ":status", Value: "200"},
	{Name: "content-type", Value: "application/grpc"},
	{Name: "date", Value: "Mon, 07 Dec 2026 18:30:00 GMT"},
	{Name: "x-envoy-upstream-service-time", Value: "1"},
}

// A literal header writer's blocks refer to no dynamic table: each
// decodes alone, as the first did, with the fields written; blocks
// split across CONTINUATION frames too.
func TestLiteralHeaderWriterKeepsNoTable(t *testing.T) {
	for _, maxFrame := range []uint32{16384, 7} {
		w := NewLiteralHeaderWriter()
		lists := [][]hpack.HeaderField{responseFields, responseFields, responseFields[:2], responseFields}
		for i, b := range writtenBlocks(t, w, maxFrame, lists...) {
			if got := decodeAlone(t, b); !reflect.DeepEqual(got, lists[i]) {
				t.Errorf("max frame %d, block %d: decoded %v, want %v", maxFrame, i, got, lists[i])
			}
		}
	}
}

// The default header writer indexes: the same fields again take a few
// bytes, and that block needs the table the first one built.
func TestHeaderWriterIndexes(t *testing.T) {
	blocks := writtenBlocks(t, NewHeaderWriter(), 16384, responseFields, responseFields)
	if len(blocks[1]) >= len(blocks[0]) {
		t.Errorf("second block %d bytes, first %d: want the second indexed, shorter", len(blocks[1]), len(blocks[0]))
	}
	dec := hpack.NewDecoder(4096, nil)
	if _, err := dec.DecodeFull(blocks[1]); err == nil {
		t.Error("the second block decoded without the first: want it to refer to the dynamic table")
	}
	literal := writtenBlocks(t, NewLiteralHeaderWriter(), 16384, responseFields)
	t.Logf("block of %d fields: %d bytes literal, %d indexed", len(responseFields), len(literal[0]), len(blocks[1]))
}
