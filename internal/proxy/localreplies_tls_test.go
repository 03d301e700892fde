package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"

	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	tlsinspectorv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
)

// Over TLS, HTTP/1.1 is served by Go's net/http server, which refuses a
// malformed head itself, before the proxy sees the request: same status,
// but only an ambiguously framed head (the framing guard's) is counted as
// a downstream protocol error. A malformed body reaches the proxy and is
// answered and counted as on plaintext.
func TestLocalRepliesOverTLS(t *testing.T) {
	t.Parallel()
	app := startUpstream(t, "app", nil)
	certFile, keyFile, pool := selfSigned(t, "greeting.demo.local")
	tlsCtx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: fileSource(certFile), PrivateKey: fileSource(keyFile)}},
	}}
	secure := xChain("ingress_http_9443_tls", 9443, xHCM("ingress.http.9443", "rds_ingress_http_9443"))
	secure.FilterChainMatch.TransportProtocol = "tls"
	secure.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tlsCtx)}}
	l := xListener(ingressName, "0.0.0.0:15000", secure)
	l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{
		Name: "envoy.filters.listener.tls_inspector", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	})
	p := startProxy(t, Config{Listen: map[uint32]string{9443: "127.0.0.1:0"}})
	mustApply(t, p, xds{
		listeners: []*listenerv3.Listener{l},
		routes:    []*routev3.RouteConfiguration{xRouteConfig("rds_ingress_http_9443", xVHost("in", []string{"*"}, xRoute("/", to("cds_app"))))},
		clusters:  []*clusterv3.Cluster{xCluster("cds_app", app.Addr())},
	}.snap(t))
	addr := addrOf(t, p, ingressName, 9443)

	for _, tc := range []struct {
		name, raw      string
		status         int
		protocolErrors int64 // downstream_cx_protocol_error after it
	}{
		{"malformed head", "GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n", 400, 0},
		{"ambiguous framing", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 1},
		{"malformed body", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, 2},
	} {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "greeting.demo.local", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, tc.raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s over TLS: %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		waitFor(t, "downstream_cx_protocol_error after "+tc.name, func() bool {
			return statValue(t, p, "http.ingress.http.9443.downstream_cx_protocol_error") == tc.protocolErrors
		})
	}
}
