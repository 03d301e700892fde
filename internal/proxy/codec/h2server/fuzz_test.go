package h2server

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzServeConn feeds arbitrary frames (after a valid preface) to a
// connection: whatever they are, the server must not panic, and
// ServeConn must return once the input ends.
func FuzzServeConn(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
		_, _ = io.WriteString(w, "ok")
	})}
	f.Fuzz(func(t *testing.T, frames []byte) {
		in := io.MultiReader(bytes.NewReader([]byte(http2.ClientPreface)), bytes.NewReader(frames))
		_ = s.ServeConn(&fakeConn{r: in})
	})
}

// fuzzSeeds are frame sequences of requests, well-formed and not.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	build := func(fn func(fr *http2.Framer, block func(kv ...string) []byte)) {
		var buf, hbuf bytes.Buffer
		enc := hpack.NewEncoder(&hbuf)
		fr := http2.NewFramer(&buf, nil)
		block := func(kv ...string) []byte {
			hbuf.Reset()
			for i := 0; i+1 < len(kv); i += 2 {
				_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
			}
			return append([]byte(nil), hbuf.Bytes()...)
		}
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
		fn(fr, block)
		seeds = append(seeds, buf.Bytes())
	}
	get := []string{":method", "GET", ":scheme", "http", ":path", "/", ":authority", "x"}
	post := []string{":method", "POST", ":scheme", "http", ":path", "/", ":authority", "x", "content-length", "3"}
	build(func(fr *http2.Framer, block func(kv ...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(get...), EndStream: true, EndHeaders: true})
		_ = fr.WriteWindowUpdate(1, 100)
		_ = fr.WriteWindowUpdate(0, 100)
	})
	build(func(fr *http2.Framer, block func(kv ...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(post...), EndHeaders: true})
		_ = fr.WriteData(1, false, []byte("ab"))
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block("x-t", "1"), EndStream: true, EndHeaders: true})
		_ = fr.WriteRSTStream(1, http2.ErrCodeCancel)
	})
	build(func(fr *http2.Framer, block func(kv ...string) []byte) {
		b := block(get...)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: b[:2], EndStream: true})
		_ = fr.WriteContinuation(3, true, b[2:])
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WritePriority(3, http2.PriorityParam{StreamDep: 3})
		_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	build(func(fr *http2.Framer, block func(kv ...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(append(get, "connection", "x", "te", "gzip")...), EndStream: true, EndHeaders: true})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: block(post...), EndHeaders: true})
		_ = fr.WriteData(5, true, []byte("abcdef"))
		_ = fr.WriteRawFrame(0xff, 0, 0, []byte("unknown"))
	})
	return seeds
}
