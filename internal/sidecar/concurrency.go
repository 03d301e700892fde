package sidecar

import (
	"strconv"
	"strings"
)

// Where the proxy's core count came from, as the start-up log says it.
const (
	concurrencyFlag    = "--concurrency"
	concurrencyEnvoy   = "ENVOY_CONCURRENCY"
	concurrencyGo      = "GOMAXPROCS"
	concurrencySidecar = "sidecar default"
	concurrencyGateway = "gateway default"
)

// maxConcurrency bounds the cores asked for: the runtime allocates a
// processor's state for each, whether or not the machine has the core.
const maxConcurrency = 1024

// concurrency is how many cores (GOMAXPROCS) the proxy runs on, and what
// chose it: --concurrency when given, else ENVOY_CONCURRENCY (App Mesh's
// Envoy image passed it to Envoy's --concurrency), else GOMAXPROCS from
// the environment (the runtime applied it already), else one core for a
// sidecar and every core for a gateway. A sidecar serves one
// application's requests: on one core a request's hand-offs between
// goroutines (reader, handler, writer) stay on one thread instead of
// waking another, a third less CPU per gRPC request at 1000 rps
// (BENCHMARKS.md), as Linkerd's proxy runs one worker by default. A
// gateway serves many applications and takes what the machine has.
// n is 0 for every core (the CPU count or the container's CPU limit):
// the runtime's default stands, or, asked for by the flag or
// ENVOY_CONCURRENCY, is restored over a GOMAXPROCS variable (Run).
func concurrency(cfg Config, gateway bool) (n int, from string, err error) {
	if cfg.ConcurrencySet {
		if cfg.Concurrency < 0 || cfg.Concurrency > maxConcurrency {
			return 0, "", configf("--concurrency %d: must be 0 (every core) to %d", cfg.Concurrency, maxConcurrency)
		}
		return cfg.Concurrency, concurrencyFlag, nil
	}
	if v := strings.TrimSpace(cfg.Getenv(concurrencyEnvoy)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxConcurrency {
			return 0, "", configf("%s=%q: must be a whole number, 0 (every core) to %d", concurrencyEnvoy, v, maxConcurrency)
		}
		return n, concurrencyEnvoy, nil
	}
	if strings.TrimSpace(cfg.Getenv(concurrencyGo)) != "" {
		return 0, concurrencyGo, nil
	}
	if gateway {
		return 0, concurrencyGateway, nil
	}
	return 1, concurrencySidecar, nil
}
