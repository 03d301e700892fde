package hcm

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"net/url"
	"testing"
)

func TestSetXFCC(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("spiffe://shop/virtualNode/frontend")
	peer := &x509.Certificate{Raw: []byte("der"), URIs: []*url.URL{u}}
	sum := sha256.Sum256(peer.Raw)
	hash := hex.EncodeToString(sum[:])
	by := func() string { return "spiffe://shop/virtualNode/checkout" }
	for _, tc := range []struct {
		name  string
		cs    *tls.ConnectionState
		local func() string
		want  string
	}{
		{"plaintext drops a made-up header", nil, nil, ""},
		{"TLS without client certificate", &tls.ConnectionState{}, by, ""},
		{"mutual TLS", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer}}, by,
			"By=spiffe://shop/virtualNode/checkout;Hash=" + hash + ";URI=spiffe://shop/virtualNode/frontend"},
		{"no local URI", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer}}, func() string { return "" },
			"Hash=" + hash + ";URI=spiffe://shop/virtualNode/frontend"},
	} {
		h := http.Header{xfccHeader: {"URI=spiffe://shop/virtualNode/admin"}}
		setXFCC(h, tc.cs, tc.local)
		if got := h.Get(xfccHeader); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
