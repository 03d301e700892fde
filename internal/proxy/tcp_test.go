package proxy

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"

	"github.com/meshlens/meshlens/internal/proxy/table"
)

// startTCPUpstream reads everything until the client half-closes, then
// answers "got N" and closes: it works only if the FIN crosses the proxy
// and the reverse direction keeps flowing after it.
func startTCPUpstream(t *testing.T) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "got %d", n)
	})
}

// serveConns accepts connections on loopback until the test ends and
// runs serve on each (which the connection is closed after); it returns
// the address.
func serveConns(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// tcpInbound is a sidecar's inbound listener with a TCP chain on 5432.
func tcpInbound(t *testing.T, upstream string, idle time.Duration) *table.Snapshot {
	return xds{
		listeners: []*listenerv3.Listener{xListener(ingressName, "0.0.0.0:15000", xChain("ingress_tcp_5432", 5432, xTCP("ingress.tcp.5432", idle, to("cds_tcp"))))},
		clusters:  []*clusterv3.Cluster{xCluster("cds_tcp", upstream)},
	}.snap(t)
}

func TestTCPProxyHalfClose(t *testing.T) {
	t.Parallel()
	p := startProxy(t, Config{Listen: map[uint32]string{5432: "127.0.0.1:0"}})
	mustApply(t, p, tcpInbound(t, startTCPUpstream(t), 0))

	for range 3 {
		conn, err := net.Dial("tcp", addrOf(t, p, ingressName, 5432))
		if err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, 200<<10)
		if _, err := conn.Write(payload); err != nil {
			t.Fatal(err)
		}
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(conn)
		conn.Close()
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		if want := fmt.Sprintf("got %d", len(payload)); string(b) != want {
			t.Fatalf("upstream answered %q, want %q", b, want)
		}
	}
}

func TestTCPProxyIdleTimeout(t *testing.T) {
	t.Parallel()
	p := startProxy(t, Config{Listen: map[uint32]string{5432: "127.0.0.1:0"}})
	mustApply(t, p, tcpInbound(t, startTCPUpstream(t), 150*time.Millisecond))
	conn, err := net.Dial("tcp", addrOf(t, p, ingressName, 5432))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("idle session: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("idle session closed after %s", d)
	}
}
