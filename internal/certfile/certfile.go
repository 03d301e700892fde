// Package certfile serves a TLS certificate from PEM files and reads the
// files again when they change, so that a server keeps running across a
// certificate rotation (cert-manager, an ACME client, an operator
// replacing the files) instead of serving the old certificate until it
// expires.
//
// The files are looked at, at most once per Interval, by the handshake
// that needs the certificate: their modification times and sizes are
// compared with those of the pair in use, and a changed pair is loaded.
// A pair that does not load (a certificate written before its key, a
// truncated file) leaves the certificate in use unchanged, with a
// warning, and is tried again at the next look.
package certfile

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultInterval is how often the files are looked at.
const DefaultInterval = 5 * time.Second

// Reloader holds the certificate of a pair of PEM files.
type Reloader struct {
	certFile, keyFile string
	// Interval is how often the files are looked at (DefaultInterval
	// when 0). Set it before the first handshake.
	Interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]stamp // of the pair in use
	checked time.Time
	failed  [2]stamp // of the last pair that did not load, logged once
}

// stamp tells a file's version apart: its modification time and size.
type stamp struct {
	mod  time.Time
	size int64
}

func stampOf(name string) (stamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return stamp{}, err
	}
	return stamp{fi.ModTime(), fi.Size()}, nil
}

// Load reads the pair, which must load, and returns its Reloader. log
// receives rotations and failed reloads; nil means slog.Default().
func Load(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.Default()
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	st, cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert, r.stamp, r.checked = cert, st, r.now()
	return r, nil
}

func (r *Reloader) load() ([2]stamp, *tls.Certificate, error) {
	var st [2]stamp
	var err error
	if st[0], err = stampOf(r.certFile); err != nil {
		return st, nil, fmt.Errorf("certificate %s: %w", r.certFile, err)
	}
	if st[1], err = stampOf(r.keyFile); err != nil {
		return st, nil, fmt.Errorf("key %s: %w", r.keyFile, err)
	}
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return st, nil, fmt.Errorf("certificate %s, key %s: %w", r.certFile, r.keyFile, err)
	}
	return st, &pair, nil
}

// GetCertificate is tls.Config.GetCertificate: the pair in use, read
// again first if the files changed since and Interval has passed since
// the last look.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	iv := r.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	if now := r.now(); now.Sub(r.checked) >= iv {
		r.checked = now
		r.refreshLocked()
	}
	return r.cert, nil
}

// refreshLocked loads the pair if the files changed.
func (r *Reloader) refreshLocked() {
	var st [2]stamp
	var err error
	if st[0], err = stampOf(r.certFile); err == nil {
		st[1], err = stampOf(r.keyFile)
	}
	if err == nil && st == r.stamp {
		return
	}
	st, cert, err := r.load()
	if err != nil {
		if st != r.failed {
			r.failed = st
			r.log.Warn("tls: the certificate files changed but do not load; serving the previous certificate", "error", err)
		}
		return
	}
	r.cert, r.stamp, r.failed = cert, st, [2]stamp{}
	r.log.Info("tls: certificate reloaded", "cert", r.certFile, "key", r.keyFile)
}

// Config returns a server TLS configuration (TLS 1.2 and later) that
// serves r's certificate.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12}
}
