# meshlens build and test entry points. `make test` is what CI runs.
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 10s

.PHONY: build test test-deps unit fuzz lint demo

build:
	$(GO) build -o bin/meshlens ./cmd/meshlens

# Everything CI runs: installs what the tests need, vets, runs every test
# under the race detector, then gives each fuzz target a short run.
test: test-deps lint unit fuzz

test-deps:
	./scripts/install-test-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -timeout 20m $(PKGS)

# Each fuzz target runs for FUZZTIME on its own (go test allows one -fuzz
# target per invocation).
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

demo:
	$(GO) run ./cmd/meshlens demo
