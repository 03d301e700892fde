#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine; each part
# only if it is missing, so a second run costs seconds.
#   - prometheus (Debian): a real Prometheus server scrapes the proxies,
#     and promtool checks our exposition format.
#   - statsd_exporter (Go module proxy): a real DogStatsD consumer.
#   - h2spec (Go module proxy): the HTTP/2 conformance suite.
#   - curl: App Mesh's container health check is a curl pipeline; the
#     capture test's client application.
#   - iptables and iproute2 (Debian): the capture tests install real
#     iptables rules in network namespaces they create (as root; see
#     docs/capture.md). Debian's iptables is iptables-nft.
#   - chromium (Debian): the console's browser test drives it headless
#     through playwright-core (web/console, installed by npm ci from the
#     lockfile; no browser is downloaded).
#   - etcd-server and etcd-client (Debian, etcd 3.4): the etcd store's
#     contract tests and the high-availability end-to-end test run real
#     etcd clusters (internal/etcdtest); the Go client talks to 3.4 as
#     to newer servers. The package's own service is disabled.
#   - nodejs and npm, only where the machine has no node: they build the
#     console and run its browser test.
#   - Jaeger v2 and an OpenTelemetry Collector (Go module proxy): real
#     trace collectors for the end-to-end tracing tests, built from their
#     Go modules (see build_collectors below and docs/tracing.md).
set -euo pipefail
need_apt=()
for pkg in prometheus curl chromium etcd-server etcd-client iptables iproute2; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  # The package starts a Prometheus service; the tests run their own.
  $SUDO systemctl disable --now prometheus prometheus-node-exporter etcd >/dev/null 2>&1 || true
  pkill -x prometheus >/dev/null 2>&1 || true
fi
gobin="$(go env GOPATH)/bin"
if [ ! -x "$gobin/statsd_exporter" ]; then
  GOFLAGS= go install github.com/prometheus/statsd_exporter@v0.31.0
fi
# h2spec: the HTTP/2 conformance suite the HTTP/2 codec is tested with.
if [ ! -x "$gobin/h2spec" ]; then
  GOFLAGS= go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
fi

# Real trace collectors, built once per version into $gobin under a
# versioned name (test/e2e/collectors_test.go looks for exactly these), in
# scratch modules under a cache directory so nothing of theirs enters
# meshlens's go.mod. On CI's 2 cores the first build of each takes minutes
# (docs/tracing.md gives the measured times); later runs skip it.
JAEGER_VERSION=v1.75.0
OTELCOL_VERSION=v0.161.0
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MESHLENS_TEST_DEPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlens-test-deps}"
jaeger_bin="$gobin/jaeger-$JAEGER_VERSION"
otelcol_bin="$gobin/otelcol-meshlens-$OTELCOL_VERSION"

build_jaeger() {
  local start=$SECONDS dir="$cache/jaeger-$JAEGER_VERSION"
  rm -rf "$dir" && mkdir -p "$dir" || return 1
  cp "$repo/test/collectors/jaeger.go.mod" "$dir/go.mod" || return 1
  (cd "$dir" && GOFLAGS= go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" \
     && GOFLAGS= go build -trimpath -o "$jaeger_bin.tmp" github.com/jaegertracing/jaeger/cmd/jaeger) || return 1
  mv "$jaeger_bin.tmp" "$jaeger_bin" || return 1
  echo "built Jaeger $JAEGER_VERSION in $((SECONDS - start))s: $jaeger_bin"
}

build_otelcol() {
  local start=$SECONDS dir="$cache/otelcol-$OTELCOL_VERSION" builder="$gobin/builder-$OTELCOL_VERSION"
  if [ ! -x "$builder" ]; then
    GOFLAGS= GOBIN="$cache/builder-bin" go install "go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION" || return 1
    mv "$cache/builder-bin/builder" "$builder" || return 1
  fi
  rm -rf "$dir" && mkdir -p "$dir" || return 1
  sed "s|@OUTPUT_PATH@|$dir/dist|" "$repo/test/collectors/otelcol-builder.yaml" >"$dir/manifest.yaml" || return 1
  GOFLAGS= "$builder" --config "$dir/manifest.yaml" || return 1
  mv "$dir/dist/otelcol-meshlens" "$otelcol_bin" || return 1
  echo "built OpenTelemetry Collector $OTELCOL_VERSION in $((SECONDS - start))s: $otelcol_bin"
}

# The two builds run at once: while one downloads modules or links, the
# other compiles.
pids=()
[ -x "$jaeger_bin" ] || { build_jaeger & pids+=($!); }
[ -x "$otelcol_bin" ] || { build_otelcol & pids+=($!); }
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
if [ "$failed" -ne 0 ]; then
  echo "install-test-deps: building a trace collector failed (see above)" >&2
  exit 1
fi

go version
go mod download
