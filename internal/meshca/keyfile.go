package meshca

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// KeyEnv is the environment variable that can hold the key-encryption
// key, instead of a file.
const KeyEnv = "MESHLENS_CA_KEY"

// ErrNoKey: neither a key file nor KeyEnv was given.
var ErrNoKey = errors.New("the mesh CA needs a key-encryption key for its private keys: pass --ca-key-file <file> " +
	"(32 random bytes, base64 or hex), set " + KeyEnv + ", or pass --ca-generate-key to create one next to the store")

// Key encrypts the CA private keys kept in the store (AES-256-GCM).
type Key struct{ aead cipher.AEAD }

// ParseKey reads a key-encryption key: 32 bytes written as standard
// base64 (44 characters) or hex (64 characters), surrounding white space
// ignored.
func ParseKey(b []byte) (*Key, error) {
	s := bytes.TrimSpace(b)
	var raw []byte
	switch len(s) {
	case 44:
		raw = make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		n, err := base64.StdEncoding.Decode(raw, s)
		if err != nil {
			return nil, fmt.Errorf("ca key: not base64: %w", err)
		}
		raw = raw[:n]
	case 64:
		raw = make([]byte, 32)
		if _, err := hex.Decode(raw, s); err != nil {
			return nil, fmt.Errorf("ca key: not hex: %w", err)
		}
	default:
		return nil, fmt.Errorf("ca key: %d characters; want 32 bytes as base64 (44 characters) or hex (64)", len(s))
	}
	if len(raw) != 32 {
		return nil, fmt.Errorf("ca key: %d bytes, want 32", len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	return &Key{aead: aead}, nil
}

// maxKeyFile bounds what LoadKey reads.
const maxKeyFile = 4096

// LoadKey reads the key-encryption key from file, or when file is empty
// from the environment variable KeyEnv (getenv looks it up). It refuses a
// key file that others can read.
func LoadKey(file string, getenv func(string) string) (*Key, error) {
	if file == "" {
		v := getenv(KeyEnv)
		if v == "" {
			return nil, ErrNoKey
		}
		k, err := ParseKey([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeyEnv, err)
		}
		return k, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("ca key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("ca key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("ca key file %s: mode %v lets others read it; chmod 600 it", file, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("ca key file %s: %w", file, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("ca key file %s: larger than %d bytes", file, maxKeyFile)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("ca key file %s: %w", file, err)
	}
	return k, nil
}

// GenerateKeyFile writes a new random key to file (mode 0600) unless the
// file exists, and returns the key in the file.
func GenerateKeyFile(file string) (*Key, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate ca key: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadKey(file, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("generate ca key: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return nil, fmt.Errorf("generate ca key %s: %w", file, err)
	}
	return ParseKey([]byte(base64.StdEncoding.EncodeToString(raw)))
}

// seal encrypts plaintext bound to label (the mesh), nonce first.
func (k *Key) seal(plaintext []byte, label string) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.aead.Seal(nonce, nonce, plaintext, []byte(label)), nil
}

// ErrWrongKey: a sealed CA key does not open with the key given.
var ErrWrongKey = errors.New("the CA private key in the store does not decrypt with this key-encryption key (was the store created with another --ca-key-file or " + KeyEnv + "?)")

// open decrypts what seal wrote for the same label.
func (k *Key) open(sealed []byte, label string) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, ErrWrongKey
	}
	out, err := k.aead.Open(nil, sealed[:n], sealed[n:], []byte(label))
	if err != nil {
		return nil, ErrWrongKey
	}
	return out, nil
}
