package proxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// An HTTP/2 upstream whose response head is malformed (a
// connection-specific field) gets its stream reset with PROTOCOL_ERROR,
// and the client an upstream-reset 503, not the response; the
// connection goes on, and the next well-formed response is forwarded.
func TestUpstreamHTTP2MalformedResponseIsReset(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	resets := make(chan http2.ErrCode, 1)
	go rawH2Upstream(t, ln, resets)

	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_raw")))},
		withHTTP2(xCluster("cds_raw", ln.Addr().String()))).snap(t))
	c := testClient()
	base := "http://" + addrOf(t, p, egressName, 0)

	resp, body := get(t, c, base+"/malformed", "raw", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("malformed upstream response: %d %q, want 503", resp.StatusCode, body)
	}
	select {
	case code := <-resets:
		if code != http2.ErrCodeProtocol {
			t.Fatalf("upstream stream reset with %v, want PROTOCOL_ERROR", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream saw no RST_STREAM")
	}
	resp, body = get(t, c, base+"/fine", "raw", nil)
	if resp.StatusCode != http.StatusOK || body != "fine" {
		t.Fatalf("well-formed upstream response: %d %q", resp.StatusCode, body)
	}
}

// rawH2Upstream serves HTTP/2 frame by frame on the first connection of
// ln: /malformed is answered with a connection-specific header field,
// anything else 200 "fine"; the codes of the resets it receives go to
// resets.
func rawH2Upstream(t *testing.T, ln net.Listener, resets chan<- http2.ErrCode) {
	c, err := ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	if fr.WriteSettings() != nil {
		return
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			select {
			case resets <- f.ErrCode:
			default:
			}
		case *http2.MetaHeadersFrame:
			path := ""
			for _, hf := range f.PseudoFields() {
				if hf.Name == ":path" {
					path = hf.Value
				}
			}
			hbuf.Reset()
			_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			if path == "/malformed" {
				_ = enc.WriteField(hpack.HeaderField{Name: "connection", Value: "keep-alive"})
			}
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: hbuf.Bytes(), EndHeaders: true})
			_ = fr.WriteData(f.StreamID, true, []byte("fine"))
		}
	}
}
