#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine; each part
# only if it is missing, so a second run costs seconds.
#   - prometheus (Debian): a real Prometheus server scrapes the proxies,
#     and promtool checks our exposition format.
#   - statsd_exporter (Go module proxy): a real DogStatsD consumer.
#   - curl: App Mesh's container health check is a curl pipeline.
#   - chromium (Debian): the console's browser test drives it headless
#     through playwright-core (web/console, installed by npm ci from the
#     lockfile; no browser is downloaded).
#   - nodejs and npm, only where the machine has no node: they build the
#     console and run its browser test.
set -euo pipefail
need_apt=()
for pkg in prometheus curl chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  # The package starts a Prometheus service; the tests run their own.
  $SUDO systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  pkill -x prometheus >/dev/null 2>&1 || true
fi
gobin="$(go env GOPATH)/bin"
if [ ! -x "$gobin/statsd_exporter" ]; then
  GOFLAGS= go install github.com/prometheus/statsd_exporter@v0.31.0
fi
go version
go mod download
