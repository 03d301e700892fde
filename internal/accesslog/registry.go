package accesslog

import (
	"path/filepath"
	"sync"
)

// Registry shares one Writer per path, so listeners (and proxies in one
// process) that log to the same file append whole lines through one
// queue instead of interleaving partial writes through several. A Writer
// from Get is released with its Close; the last Close flushes it.
type Registry struct {
	mu      sync.Mutex
	writers map[string]*Writer
}

var defaultRegistry Registry

// Get returns the process-wide Writer for path, opening it on first use.
// See Registry.Get.
func Get(path string, opts Options) (*Writer, error) { return defaultRegistry.Get(path, opts) }

// ReopenAll asks every Writer of the process-wide registry to reopen its
// file; the proxy calls it on SIGUSR1, as Envoy reopens its access logs.
func ReopenAll() { defaultRegistry.ReopenAll() }

// Get returns the Writer for path, opening it with opts on first use and
// otherwise adding a reference (the first opener's options stay). Each
// Get is matched by one Close on the returned Writer.
func (r *Registry) Get(path string, opts Options) (*Writer, error) {
	key := path
	if path != "/dev/stdout" && path != "/dev/stderr" {
		if abs, err := filepath.Abs(path); err == nil {
			key = abs
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if w := r.writers[key]; w != nil {
		w.mu.Lock()
		w.refs++
		w.mu.Unlock()
		return w, nil
	}
	w, err := Open(path, opts)
	if err != nil {
		return nil, err
	}
	w.reg, w.key = r, key
	if r.writers == nil {
		r.writers = make(map[string]*Writer)
	}
	r.writers[key] = w
	return w, nil
}

// ReopenAll asks every Writer in r to reopen its file.
func (r *Registry) ReopenAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.writers {
		w.Reopen()
	}
}
