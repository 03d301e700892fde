package hcm

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
)

// xfccHeader is Envoy's x-forwarded-client-cert, in net/http's canonical
// form.
const xfccHeader = "X-Forwarded-Client-Cert"

// setXFCC applies Envoy's forward_client_cert_details SANITIZE_SET with
// the hash and URI details, as App Mesh configured it: whatever the client
// sent is dropped, and a request that came over TLS with a client
// certificate carries By=<this proxy's URI SAN>;Hash=<SHA-256 of the
// client certificate>;URI=<the client's URI SAN>. A header a client makes
// up never reaches the application.
func setXFCC(hdr http.Header, cs *tls.ConnectionState, localURI func() string) {
	delete(hdr, xfccHeader)
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return
	}
	peer := cs.PeerCertificates[0]
	var b strings.Builder
	if localURI != nil {
		if by := localURI(); by != "" {
			b.WriteString("By=")
			b.WriteString(xfccValue(by))
			b.WriteByte(';')
		}
	}
	sum := sha256.Sum256(peer.Raw)
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	if len(peer.URIs) > 0 {
		b.WriteString(";URI=")
		b.WriteString(xfccValue((*url.URL)(peer.URIs[0]).String()))
	}
	hdr[xfccHeader] = []string{b.String()}
}

// xfccValue quotes a value that holds a separator, as Envoy does.
func xfccValue(v string) string {
	if strings.ContainsAny(v, ",;=\"") {
		return `"` + strings.ReplaceAll(v, `"`, `\"`) + `"`
	}
	return v
}
