package meshca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// maxPEMFile bounds the size of a root's certificate or key file.
const maxPEMFile = 1 << 20

// LoadRootFiles reads a user's own root: a PEM CA certificate and its PEM
// private key (PKCS#8, PKCS#1 or SEC 1).
func LoadRootFiles(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	cb, err := readBounded(certFile)
	if err != nil {
		return nil, nil, err
	}
	kb, err := readBounded(keyFile)
	if err != nil {
		return nil, nil, err
	}
	cert, key, err := ParseRoot(cb, kb)
	if err != nil {
		return nil, nil, fmt.Errorf("root %s, %s: %w", certFile, keyFile, err)
	}
	return cert, key, nil
}

func readBounded(file string) ([]byte, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("ca root: %w", err)
	}
	if fi.Size() > maxPEMFile {
		return nil, fmt.Errorf("ca root %s: larger than %d bytes", file, maxPEMFile)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ca root: %w", err)
	}
	return b, nil
}

// ParseRoot reads a CA certificate and its private key from PEM and
// checks that the certificate may sign certificates and that the key is
// its own.
func ParseRoot(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, errors.New("certificate: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, errors.New("certificate: not a CA certificate (basicConstraints CA:TRUE and keyUsage keyCertSign are required)")
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, nil, err
	}
	if !samePublic(cert.PublicKey, key.Public()) {
		return nil, nil, errors.New("private key: does not belong to the certificate")
	}
	return cert, key, nil
}

// ParsePrivateKey reads a PEM private key: PKCS#8, PKCS#1 (RSA) or SEC 1
// (EC).
func ParsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("private key: no PEM block")
	}
	var k any
	var err error
	switch kb.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		return nil, fmt.Errorf("private key: PEM block %q is not a private key", kb.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key: %T cannot sign", k)
	}
	return s, nil
}

func samePublic(a, b crypto.PublicKey) bool {
	switch k := a.(type) {
	case *ecdsa.PublicKey:
		return k.Equal(b)
	case *rsa.PublicKey:
		return k.Equal(b)
	case ed25519.PublicKey:
		return k.Equal(b)
	}
	return false
}
