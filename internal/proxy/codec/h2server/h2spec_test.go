package h2server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// h2specPath finds the h2spec binary: on PATH or in GOPATH/bin.
func h2specPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	if gp, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(string(regexp.MustCompile(`\s+$`).ReplaceAll(gp, nil)), "bin", "h2spec")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("MESHLENS_REQUIRE_COLLECTORS") == "1" {
		t.Fatal("h2spec is not installed (scripts/install-test-deps.sh installs it)")
	}
	t.Skip("h2spec is not installed (scripts/install-test-deps.sh installs it)")
	return ""
}

// serve serves the codec on a loopback listener until the test ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	return serveWrapped(t, s, func(c net.Conn) net.Conn { return c }, nil)
}

// serveWrapped is serve with each accepted connection wrapped by wrap,
// and done called as each ends.
func serveWrapped(t *testing.T, s *Server, wrap func(net.Conn) net.Conn, done func()) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// As the proxy serves a connection.
			go func() { _ = s.ServeConnDetached(wrap(c), done) }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.Close()
	})
	return ln.Addr().String()
}

// echoHandler reads the request body and answers with a small body.
var echoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "hello from h2server\n")
})

// TestH2Spec runs h2spec's whole HTTP/2 suite (RFC 7540 and HPACK)
// against the codec, in h2c and over TLS (ALPN h2), and requires every
// case to pass.
func TestH2Spec(t *testing.T) {
	bin := h2specPath(t)
	t.Run("h2c", func(t *testing.T) {
		runH2Spec(t, bin, serve(t, &Server{Handler: echoHandler}))
	})
	t.Run("h2c-parked", func(t *testing.T) {
		// Every wait for the client parks the connection (idlewait), as
		// on the proxy's listener connections.
		var ended atomic.Int64
		runH2Spec(t, bin, serveParked(t, &Server{Handler: echoHandler}, &ended))
	})
	t.Run("tls", func(t *testing.T) {
		runH2Spec(t, bin, serveTLS(t, &Server{Handler: echoHandler}), "-t", "-k")
	})
}

// serveTLS serves the codec behind TLS with ALPN h2 and a self-signed
// certificate, as the proxy does once its handshake is done.
func serveTLS(t *testing.T, s *Server) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{"h2"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := tls.Server(c, conf)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.Handshake() != nil || tc.ConnectionState().NegotiatedProtocol != "h2" {
					_ = tc.Close()
					return
				}
				_ = tc.SetDeadline(time.Time{})
				_ = s.ServeConn(tc)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.Close()
	})
	return ln.Addr().String()
}

func runH2Spec(t *testing.T, bin, addr string, flags ...string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(bin, append([]string{"-h", host, "-p", port, "-o", "2"}, flags...)...).CombinedOutput()
	passed, failed := h2specTally(out)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("h2spec: %v", err)
	}
	if failed != 0 || passed != 146 && passed != 145 {
		t.Fatalf("h2spec: %d passed, %d failed\n%s", passed, failed, out)
	}
	t.Logf("h2spec: %d passed, %d failed", passed, failed)
}

var tallyRE = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

func h2specTally(out []byte) (passed, failed int) {
	m := tallyRE.FindSubmatch(out)
	if m == nil {
		return 0, -1
	}
	passed, _ = strconv.Atoi(string(m[2]))
	failed, _ = strconv.Atoi(string(m[4]))
	return passed, failed
}
