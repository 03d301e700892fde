# meshlens build and test entry points. `make test` is what CI runs.
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 6s

.PHONY: build test test-deps unit fuzz lint console demo bench bench-smoke

# Every build and test here leaves out gRPC's request tracing
# (golang.org/x/net/trace, /debug/requests, off unless a program turns it
# on; meshlens never does): it links html/template, whose reflective
# method calls keep every exported method of every linked type in the
# binary. Without it the proxy-only binary has 3.2 MB less code and data
# to map (docs/design.md). Exported, so that the binaries the tests and
# the benchmarks build are built the same way.
BUILDTAGS ?= grpcnotrace
export GOFLAGS := $(strip $(GOFLAGS) -tags=$(BUILDTAGS))

# bin/meshlens has every command; bin/meshlens-proxy is `meshlens proxy`
# alone, the binary to deploy as a sidecar or gateway (docs/design.md),
# static: without the C library mapped, an idle sidecar holds 2 MB less.
build:
	$(GO) build -o bin/meshlens ./cmd/meshlens
	CGO_ENABLED=0 $(GO) build -o bin/meshlens-proxy ./cmd/meshlens-proxy

# Everything CI runs: installs what the tests need, vets, runs every test
# under the race detector, then gives each fuzz target a short run.
test: test-deps lint console unit fuzz bench-smoke

test-deps:
	./scripts/install-test-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Rebuilds the console from web/console's lockfile and fails if the
# bundle committed in internal/consoleui/dist differs.
console:
	./scripts/check-console.sh

# -count=1: the end-to-end tests build the binary in a subprocess, which
# go test's result cache cannot see, so a cached pass could be stale.
# MESHLENS_REQUIRE_COLLECTORS: a missing Jaeger or OpenTelemetry Collector
# binary fails the tracing tests instead of skipping them (test-deps
# builds both), and so do root, ip and iptables the capture tests (they
# create network namespaces; see docs/capture.md). MESHLENS_REQUIRE_BROWSER: the same for chromium and node in
# the console's browser test (test/e2e TestConsoleInBrowser).
unit:
	MESHLENS_REQUIRE_COLLECTORS=1 MESHLENS_REQUIRE_BROWSER=1 $(GO) test -race -count=1 -timeout 20m $(PKGS)

# Each fuzz target runs for FUZZTIME on its own (go test allows one -fuzz
# target per invocation), from its package's test binary built once;
# FUZZJOBS=2 runs two at a time (see scripts/fuzz.sh for the trade-off).
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

demo:
	$(GO) run ./cmd/meshlens demo

# The benchmark suite (bench/, its own Go module): installs HAProxy, then
# measures every scenario and regenerates BENCHMARKS.md and its plot;
# then the console on a synthetic mesh of 200 nodes and 1000 edges
# (bench/cmd/consolebench, in chromium: needs node and chromium, which
# test-deps installs), which fails when the median first paint of the
# graph exceeds 1s or a live update 2s. Takes about 45 minutes.
bench:
	./bench/install.sh
	cd bench && $(GO) run ./cmd/meshbench
	cd bench && $(GO) run ./cmd/consolebench -runs 3 -markdown ../BENCHMARKS.md

# Every benchmark scenario for about a second, the control-plane simulator
# with a few streams; fails if any scenario errors or drops a request.
bench-smoke:
	./bench/install.sh
	cd bench && $(GO) vet ./... && $(GO) test ./...
	cd bench && $(GO) run ./cmd/meshbench -smoke
