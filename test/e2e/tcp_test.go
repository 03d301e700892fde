package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// startTCPEcho runs a TCP app that echoes what it reads and, when the
// client half-closes, writes "bye" and closes.
func startTCPEcho(t *testing.T) string {
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
			go func(c net.Conn) {
				defer c.Close()
				io.Copy(c, c) // returns at the client's FIN
				c.Write([]byte("bye"))
			}(c)
		}
	}()
	return ln.Addr().String()
}

const tcpMesh = `
kind: Mesh
name: tcp
---
kind: VirtualNode
mesh: tcp
name: db
spec:
  listeners: [{portMapping: {port: 7000, protocol: tcp}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: tcp.local, serviceName: db}}
`

const tcpClient = `
---
kind: VirtualNode
mesh: tcp
name: client
spec:
  backends: [{virtualService: {virtualServiceName: db.tcp.local}}]
---
kind: VirtualService
mesh: tcp
name: db.tcp.local
spec: {provider: {virtualNode: {virtualNodeName: db}}}
`

// halfCloseRoundTrip sends a payload to addr, half-closes, and checks the
// echo followed by the app's "bye" and FIN.
func halfCloseRoundTrip(t *testing.T, addr string) {
	t.Helper()
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c) // until the app's FIN
		got <- b
	}()
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b := <-got
	want := append(append([]byte{}, payload...), "bye"...)
	if !bytes.Equal(b, want) {
		t.Fatalf("got %d bytes back, want %d (payload echoed, then bye after our half-close)", len(b), len(want))
	}
}

// An application reaches a TCP backend through its sidecar's explicit
// egress port; both directions and the half-close pass through.
func TestTCPBackendThroughEgressPort(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, tcpMesh+tcpClient, "apply", "-f", "-")
	app := startTCPEcho(t)
	_, port, _ := net.SplitHostPort(app)
	var appPort int
	fmt.Sscan(port, &appPort)
	register(t, s, "tcp", "db", "db-1", "127.0.0.1", appPort)
	p := startProxy(t, s, "mesh/tcp/virtualNode/client", true, "--ingress-addr", "none", "--egress-addr", "none", "--egress-port", "7000=127.0.0.1:0", "--register=false")
	// The egress port is bound once the proxy is live, but the
	// instance may reach it by EDS later: until then a connection has
	// nowhere to go and is closed.
	p.waitEndpoint(t, app)
	halfCloseRoundTrip(t, p.listenerAddr(t, "lds_egress_*"))
}

// TCP proxying passes bytes both ways and half-closes correctly: after the
// client's FIN the app still sends, and the client sees the app's FIN.
func TestTCPProxyHalfClose(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, tcpMesh, "apply", "-f", "-")
	app := startTCPEcho(t)
	p := startProxy(t, s, "mesh/tcp/virtualNode/db", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "7000="+app, "--register=false")

	halfCloseRoundTrip(t, p.listenerAddr(t, "lds_ingress_*"))
}

// A sidecar whose inbound listener binds port 0 registers the port the
// kernel picked: a client's sidecar reaches the application through it.
func TestTCPThroughTwoSidecarsOnPickedPorts(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, tcpMesh+tcpClient, "apply", "-f", "-")
	app := startTCPEcho(t)
	db := startProxy(t, s, "mesh/tcp/virtualNode/db", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "7000="+app)
	client := startProxy(t, s, "mesh/tcp/virtualNode/client", true, "--ingress-addr", "none", "--egress-addr", "none", "--egress-port", "7000=127.0.0.1:0", "--register=false")
	client.waitEndpoint(t, db.listenerAddr(t, "lds_ingress_*"))
	halfCloseRoundTrip(t, client.listenerAddr(t, "lds_egress_*"))
}
