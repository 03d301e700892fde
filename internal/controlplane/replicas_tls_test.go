package controlplane

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"sort"
	"testing"
	"time"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/auth"
	"github.com/meshlens/meshlens/internal/console"
	"github.com/meshlens/meshlens/internal/etcdtest"
	"google.golang.org/protobuf/proto"
)

// testAPICert is a CA and a server certificate it signed for 127.0.0.1.
func testAPICert(t *testing.T) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test api ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "replica"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestReplicasCallEachOtherOverTLSWithTokens: replicas whose API serves
// TLS and needs tokens list each other's proxies: a replica calls its
// peers over https (the peer record says so), verifies them with the CA
// it was given, and forwards the caller's token; a caller without a
// token is refused before any peer is asked.
func TestReplicasCallEachOtherOverTLSWithTokens(t *testing.T) {
	c := etcdtest.Start(t, 1)
	pool, cert := testAPICert(t)
	tokens := tokenStore(t)
	admin := newToken(t, tokens, auth.Spec{Role: auth.RoleAdmin})
	read := newToken(t, tokens, auth.Spec{Role: auth.RoleRead})
	secure := func(cfg *Config) {
		cfg.Auth = tokens
		cfg.APITLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		cfg.PeerTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	a := startReplica(t, c, "a", secure)
	b := startReplica(t, c, "b", secure)
	dialEDSWithToken(t, a.s.XDSAddr(), "mesh/m/virtualNode/front", admin)
	dialEDSWithToken(t, b.s.XDSAddr(), "mesh/m/virtualNode/back", admin)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	list := func(r *replicaCP, token string) (int, restv1.ProxyList) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+r.s.APIAddr()+"/v1/proxies", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var l restv1.ProxyList
		_ = json.NewDecoder(resp.Body).Decode(&l)
		return resp.StatusCode, l
	}
	eventually(t, 10*time.Second, func() string {
		for _, r := range []*replicaCP{a, b} {
			code, l := list(r, read)
			var got []string
			for _, p := range l.Items {
				got = append(got, p.ID+"@"+p.Replica)
			}
			sort.Strings(got)
			if want := "[mesh/m/virtualNode/back@b mesh/m/virtualNode/front@a]"; code != http.StatusOK || fmt.Sprint(got) != want || len(l.UnreachableReplicas) != 0 {
				return fmt.Sprintf("replica %s: %d %v unreachable %v, want %s", r.s.cluster.self.ID, code, got, l.UnreachableReplicas, want)
			}
		}
		return ""
	})
	if code, _ := list(a, ""); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d, want 401", code)
	}

	// The console's instances view asks b the same way: b answers (over
	// https, to the caller's token), so no replica is unreachable.
	req, _ := http.NewRequest(http.MethodGet, "https://"+a.s.APIAddr()+"/v1/console/instances", nil)
	req.Header.Set("Authorization", "Bearer "+read)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var inst console.InstancesResponse
	err = json.NewDecoder(resp.Body).Decode(&inst)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(inst.UnreachableReplicas) != 0 {
		t.Fatalf("instances through a: %d %v, unreachable %v", resp.StatusCode, err, inst.UnreachableReplicas)
	}

	// Trace queries fan out the same way: spans b holds are found
	// through a.
	body, _ := proto.Marshal(otlpRequest("back", 7, 2))
	req, _ = http.NewRequest(http.MethodPost, "https://"+b.s.APIAddr()+"/v1/traces", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/traces to b: %s", resp.Status)
	}
	eventually(t, 5*time.Second, func() string {
		req, _ := http.NewRequest(http.MethodGet, "https://"+a.s.APIAddr()+"/api/services", nil)
		req.Header.Set("Authorization", "Bearer "+read)
		resp, err := client.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		var v struct{ Data []string }
		_ = json.NewDecoder(resp.Body).Decode(&v)
		if resp.StatusCode != http.StatusOK || fmt.Sprint(v.Data) != "[back]" {
			return fmt.Sprintf("services through a: %d %v", resp.StatusCode, v.Data)
		}
		return ""
	})
}
