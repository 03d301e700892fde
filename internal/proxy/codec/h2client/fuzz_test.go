package h2client

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// FuzzResponseHead decodes arbitrary HPACK blocks as response heads:
// whatever they hold, decoding must not panic, and a head it accepts
// has a 3-digit status, no pseudo-header or connection-specific field
// in its header map, and a content-length it agrees with.
func FuzzResponseHead(f *testing.F) {
	seed := func(end bool, kv ...string) {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		for i := 0; i+1 < len(kv); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		f.Add(buf.Bytes(), end)
	}
	seed(false, ":status", "200", "content-type", "application/grpc")
	seed(true, ":status", "200", "grpc-status", "0", "grpc-message", "ok")
	seed(false, ":status", "200", "content-length", "10", "content-length", "10")
	seed(false, ":status", "100")
	seed(true, ":status", "204", "connection", "close")
	seed(false, "x", "y", ":status", "200")
	seed(false, ":status", "200", ":status", "201")
	f.Fuzz(func(t *testing.T, block []byte, ended bool) {
		dec := hpack.NewDecoder(4096, nil)
		dec.SetMaxStringLength(64 << 10)
		fields, err := dec.DecodeFull(block)
		if err != nil {
			return
		}
		h, err := parseResponseHead(fields, ended)
		if err != nil {
			return
		}
		if h.status < 100 || h.status > 999 {
			t.Fatalf("status %d accepted", h.status)
		}
		if h.status < 200 {
			return
		}
		for k, vv := range h.header {
			if strings.HasPrefix(k, ":") || len(vv) == 0 {
				t.Fatalf("header %q = %q", k, vv)
			}
			switch strings.ToLower(k) {
			case "connection", "transfer-encoding", "upgrade", "keep-alive", "proxy-connection":
				t.Fatalf("connection-specific %s accepted", k)
			}
		}
		if cl := h.header.Get("Content-Length"); (cl == "") != (h.declLen < 0) {
			t.Fatalf("content-length %q, declared %d", cl, h.declLen)
		}
		if ended && h.declLen > 0 {
			t.Fatalf("content-length %d on a head that ends the stream", h.declLen)
		}
	})
}
