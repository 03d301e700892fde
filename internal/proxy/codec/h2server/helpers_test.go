package h2server

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawClient speaks HTTP/2 frame by frame to a server under test.
type rawClient struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
	// settings are the server's first SETTINGS.
	settings map[http2.SettingID]uint32
}

// dialRaw connects to addr and does the handshake: preface, empty
// SETTINGS, the server's SETTINGS read and acknowledged.
func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := &rawClient{t: t, c: c, fr: http2.NewFramer(c, c), settings: map[http2.SettingID]uint32{}}
	r.enc = hpack.NewEncoder(&r.hbuf)
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f := r.next()
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	_ = sf.ForeachSetting(func(s http2.Setting) error { r.settings[s.ID] = s.Val; return nil })
	if err := r.fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	return r
}

// next reads a frame, failing the test on error.
func (r *rawClient) next() http2.Frame {
	r.t.Helper()
	f, err := r.fr.ReadFrame()
	if err != nil {
		r.t.Fatalf("read frame: %v", err)
	}
	return f
}

// headers sends a header block (name, value pairs) on stream id.
func (r *rawClient) headers(id uint32, end bool, kv ...string) {
	r.t.Helper()
	r.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = r.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.hbuf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		r.t.Fatal(err)
	}
}

// get sends GET / on stream id, plus extra fields.
func (r *rawClient) get(id uint32, extra ...string) {
	r.t.Helper()
	r.headers(id, true, append([]string{":method", "GET", ":scheme", "http", ":path", "/", ":authority", "x"}, extra...)...)
}

// response is what the client saw of one stream.
type response struct {
	status   int
	header   map[string]string
	body     []byte
	trailer  map[string]string
	rst      *http2.ErrCode
	complete bool // END_STREAM seen
}

// await reads frames until stream id ends (END_STREAM or RST_STREAM),
// acknowledging SETTINGS and PINGs, and fails on GOAWAY.
func (r *rawClient) await(id uint32) *response {
	r.t.Helper()
	resp := &response{header: map[string]string{}}
	for {
		f := r.next()
		if f.Header().StreamID != id && f.Header().StreamID != 0 {
			continue
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if resp.status == 0 {
				for _, hf := range f.Fields {
					if hf.Name == ":status" {
						resp.status, _ = strconv.Atoi(hf.Value)
					} else {
						resp.header[hf.Name] = hf.Value
					}
				}
			} else {
				resp.trailer = map[string]string{}
				for _, hf := range f.Fields {
					resp.trailer[hf.Name] = hf.Value
				}
			}
			if f.StreamEnded() {
				resp.complete = true
				return resp
			}
		case *http2.DataFrame:
			resp.body = append(resp.body, f.Data()...)
			if f.StreamEnded() {
				resp.complete = true
				return resp
			}
		case *http2.RSTStreamFrame:
			code := f.ErrCode
			resp.rst = &code
			return resp
		case *http2.GoAwayFrame:
			r.t.Fatalf("GOAWAY %v while waiting for stream %d", f.ErrCode, id)
		}
	}
}

// countingConn counts the Write calls made on a connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// fakeConn is a connection that reads a fixed input and drops writes.
type fakeConn struct {
	r io.Reader
}

func (c *fakeConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *fakeConn) Close() error                       { return nil }
func (c *fakeConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *fakeConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *fakeConn) SetDeadline(t time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(t time.Time) error { return nil }
