package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// listenPprof binds addr for Go's profiles, refusing any address that is
// not loopback: the profiles show the process's code and data.
func listenPprof(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usagef("--pprof-addr %q: %v", addr, err)
	}
	if host != "localhost" {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return nil, usagef("--pprof-addr %q: want a loopback address (127.0.0.1, [::1] or localhost)", addr)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof address: %w", err)
	}
	return ln, nil
}

// servePprof serves Go's profiles under /debug/pprof/ on ln until ctx
// ends. A CPU profile may last up to two minutes.
func servePprof(ctx context.Context, ln net.Listener, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      2*time.Minute + 10*time.Second,
		IdleTimeout:       time.Minute,
	}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	log.Info("serving profiles", "addr", ln.Addr().String())
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("pprof server", "error", err)
	}
}
