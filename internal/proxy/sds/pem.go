package sds

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// nextCert returns the next PEM CERTIFICATE of b and what follows it;
// nil when b holds no more PEM blocks. Other block types are skipped.
func nextCert(b []byte) (*x509.Certificate, []byte, error) {
	for {
		blk, rest := pem.Decode(b)
		if blk == nil {
			return nil, nil, nil
		}
		b = rest
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("certificate: %w", err)
		}
		return c, rest, nil
	}
}
