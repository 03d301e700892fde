// Package auth holds the control plane's bearer tokens: how a token is
// spelled, how it is stored (hashed, in a file), what it allows (a role on
// the REST API, or the xDS configuration of one node or of one mesh), and
// how an Authorization header is read.
//
// Tokens live in a file of their own, not in the resource store, because
// the store's bbolt file is held open and locked by the running server:
// the first admin token must be created before there is a server to ask
// (`meshlens token create --auth-tokens FILE`), and secrets have no place
// beside resources that are listed, exported and backed up. The file holds
// only SHA-256 hashes of the tokens; the server rereads it when it
// changes, so a token created or revoked by hand takes effect without a
// restart. The format is documented in docs/auth.md.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// A token reads mlt_<id>_<secret>: id is 12 lower-case hex digits, public
// (it names the token in lists, logs and revocations), and secret is 32
// random bytes in unpadded base64url (43 characters).
const (
	tokenPrefix = "mlt_"
	idLen       = 12
	secretBytes = 32
	secretLen   = 43 // base64.RawURLEncoding.EncodedLen(secretBytes)
	// TokenLen is the length of every token.
	TokenLen = len(tokenPrefix) + idLen + 1 + secretLen
)

// Errors Authenticate and the parsers return; callers branch on them (and
// count them by reason).
var (
	// ErrMissing: no token was presented.
	ErrMissing = errors.New("no bearer token")
	// ErrMalformed: what was presented is not a meshlens token or not a
	// Bearer authorization.
	ErrMalformed = errors.New("malformed bearer token")
	// ErrInvalid: a well-formed token that is not (or no longer) in the
	// token file.
	ErrInvalid = errors.New("token unknown or revoked")
)

// ParseToken splits a token into its public id and its secret, checking
// its form (not whether it exists).
func ParseToken(s string) (id string, err error) {
	if len(s) != TokenLen {
		return "", fmt.Errorf("%w: want %d characters mlt_<id>_<secret>, got %d", ErrMalformed, TokenLen, len(s))
	}
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return "", fmt.Errorf("%w: does not start with %q", ErrMalformed, tokenPrefix)
	}
	id, secret := rest[:idLen], rest[idLen+1:]
	if rest[idLen] != '_' {
		return "", fmt.Errorf("%w: want _ after the %d-digit id", ErrMalformed, idLen)
	}
	if !validID(id) {
		return "", fmt.Errorf("%w: id: want %d lower-case hex digits", ErrMalformed, idLen)
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(secret); err != nil || len(b) != secretBytes {
		return "", fmt.Errorf("%w: secret: want %d bytes of unpadded base64url", ErrMalformed, secretBytes)
	}
	return id, nil
}

// validID reports whether id is a token id: idLen lower-case hex digits.
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// newToken makes a random token and returns it with its id.
func newToken() (token, id string, err error) {
	var b [idLen/2 + secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("random token: %w", err)
	}
	id = hex.EncodeToString(b[:idLen/2])
	return tokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(b[idLen/2:]), id, nil
}

// hashToken is what the token file keeps of a token: its SHA-256, in hex.
// A token carries 256 random bits, so a fast hash is enough: nothing can
// be guessed from it, unlike a password.
func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// maxHeader bounds the Authorization values ParseAuthorization reads.
const maxHeader = 1024

// ParseAuthorization reads a meshlens token from an Authorization header
// (HTTP) or authorization metadata (gRPC) value: "Bearer <token>", the
// scheme in any case, separated by one or more spaces. An empty value is
// ErrMissing; anything else that is not a Bearer meshlens token is
// ErrMalformed.
func ParseAuthorization(v string) (string, error) {
	if v == "" {
		return "", ErrMissing
	}
	if len(v) > maxHeader {
		return "", fmt.Errorf("%w: authorization: longer than %d bytes", ErrMalformed, maxHeader)
	}
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: authorization: want \"Bearer <token>\"", ErrMalformed)
	}
	tok := strings.TrimLeft(rest, " ")
	if _, err := ParseToken(tok); err != nil {
		return "", fmt.Errorf("authorization: %w", err)
	}
	return tok, nil
}
