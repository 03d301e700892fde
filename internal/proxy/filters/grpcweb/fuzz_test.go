package grpcweb

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/iotest"
)

// FuzzTextDecoder: the streaming decoder agrees with decoding the whole
// body at once, whatever the chunking, and never panics on bad input.
func FuzzTextDecoder(f *testing.F) {
	f.Add([]byte("YWJj"), false)
	f.Add([]byte("YQ==YmM="), true)
	f.Add([]byte("YW\r\nJ"), false)
	f.Fuzz(func(t *testing.T, in []byte, oneByte bool) {
		var r io.Reader = bytes.NewReader(in)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		got, err := io.ReadAll(NewTextDecoder(r))
		want, werr := decodeAll(in)
		if (err != nil) != (werr != nil) {
			t.Fatalf("streaming err %v, whole err %v", err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("streaming %q, whole %q", got, want)
		}
	})
}

// decodeAll is the reference: strip line breaks, then decode 4-character
// quanta one by one.
func decodeAll(in []byte) ([]byte, error) {
	in = bytes.ReplaceAll(bytes.ReplaceAll(in, []byte("\r"), nil), []byte("\n"), nil)
	if len(in)%4 != 0 {
		return nil, errors.New("truncated")
	}
	var out []byte
	for i := 0; i < len(in); i += 4 {
		b, err := base64.StdEncoding.DecodeString(string(in[i : i+4]))
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// FuzzFrames: the frame reader and the trailer parser take any bytes
// without panicking, respect the size bound, and a trailer frame that
// AppendTrailerFrame wrote parses back to the same trailers.
func FuzzFrames(f *testing.F) {
	f.Add(AppendFrame(AppendFrame(nil, 0, []byte("msg")), FlagTrailer, []byte("grpc-status:0\r\n")))
	f.Add([]byte{0x80, 0, 0, 0, 3, 'a', ':', 'b'})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			fr, err := ReadFrame(r, 1024)
			if err != nil {
				return
			}
			if len(fr.Payload) > 1024 {
				t.Fatalf("payload of %d bytes over the bound", len(fr.Payload))
			}
			if !fr.Trailer() {
				continue
			}
			h, err := ParseTrailer(fr.Payload)
			if err != nil {
				continue
			}
			back, err := ParseTrailer(AppendTrailerFrame(nil, h)[5:])
			if err != nil || !equalHeader(back, h) {
				t.Fatalf("round trip of %v gave %v, %v", h, back, err)
			}
		}
	})
}

// FuzzRequestHeaders: any content type and accept header either leave a
// request alone or make it a gRPC request with te: trailers.
func FuzzRequestHeaders(f *testing.F) {
	f.Add("application/grpc-web-text+proto", "application/grpc-web-text")
	f.Fuzz(func(t *testing.T, ct, accept string) {
		h := http.Header{"Content-Type": {ct}, "Accept": {accept}}
		s := RequestHeaders(h)
		if !s.IsGRPCWeb() {
			if h.Get("Content-Type") != ct {
				t.Fatal("non-gRPC-Web request changed")
			}
			return
		}
		if _, ok := grpcSubtype(h.Get("Content-Type")); !ok || h.Get("Te") != "trailers" {
			t.Fatalf("translated to %v", h)
		}
	})
}
