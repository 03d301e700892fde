// Package apps holds the demo's applications, the greeter application of
// App Mesh's getting-started posts rewritten as small HTTP handlers: a
// greeter that asks greeting for a greeting and name for a name, and
// answers like "From greeter-1: Hi (greeting-v1-1) Art (name-1)". The demo
// runs each as its own process behind its own sidecar; the tests reuse
// them.
package apps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Config is one application instance.
type Config struct {
	Role     string // greeter, greeting or name
	Instance string // the instance id printed in answers
	// Words the greeting or name service answers with, one chosen at
	// random per request.
	Words []string
	// Greeter only: where the backends are, and the proxy to reach them
	// through (the sidecar's egress listener).
	GreetingURL string // default http://greeting.demo.local:9080/
	NameURL     string // default http://name.demo.local:9080/
	Proxy       string // e.g. http://127.0.0.1:15001; empty: direct
}

// Handler returns the application's HTTP handler.
func Handler(cfg Config) (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	switch cfg.Role {
	case "greeting", "name":
		words := cfg.Words
		if len(words) == 0 {
			if cfg.Role == "greeting" {
				words = []string{"Hi"}
			} else {
				words = []string{"Art"}
			}
		}
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Instance", cfg.Instance)
			fmt.Fprintf(w, "%s (%s)", words[rand.IntN(len(words))], cfg.Instance)
		})
	case "greeter":
		g, err := newGreeter(cfg)
		if err != nil {
			return nil, err
		}
		mux.Handle("/", g)
	default:
		return nil, fmt.Errorf("role %q: want greeter, greeting or name", cfg.Role)
	}
	return mux, nil
}

type greeter struct {
	cfg    Config
	client *http.Client
}

func newGreeter(cfg Config) (*greeter, error) {
	if cfg.GreetingURL == "" {
		cfg.GreetingURL = "http://greeting.demo.local:9080/"
	}
	if cfg.NameURL == "" {
		cfg.NameURL = "http://name.demo.local:9080/"
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 60 * time.Second}
	if cfg.Proxy != "" {
		u, err := url.Parse(cfg.Proxy)
		if err != nil {
			return nil, fmt.Errorf("proxy %q: %w", cfg.Proxy, err)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	return &greeter{cfg: cfg, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}, nil
}

func (g *greeter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var wg sync.WaitGroup
	var greeting, name string
	var gErr, nErr error
	wg.Add(2)
	go func() { defer wg.Done(); greeting, gErr = g.fetch(r.Context(), g.cfg.GreetingURL, r) }()
	go func() { defer wg.Done(); name, nErr = g.fetch(r.Context(), g.cfg.NameURL, r) }()
	wg.Wait()
	if err := errors.Join(gErr, nErr); err != nil {
		http.Error(w, fmt.Sprintf("From %s: %v", g.cfg.Instance, err), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "From %s: %s %s\n", g.cfg.Instance, greeting, name)
}

// tracingHeaders are passed from the incoming request to the backends so
// a trace spans the whole call tree.
var tracingHeaders = []string{"x-request-id", "traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3", "x-amzn-trace-id"}

func (g *greeter) fetch(ctx context.Context, u string, in *http.Request) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	for _, h := range tracingHeaders {
		if v := in.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return strings.TrimSpace(string(body)), nil
}

// Serve runs the application on addr until ctx ends.
func Serve(ctx context.Context, addr string, cfg Config) error {
	h, err := Handler(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
