#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, once.
# Today the suite needs only Go; later suites add Debian packages here
# (prometheus, statsd_exporter, chromium), each installed only if missing.
set -euo pipefail
need_apt=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
go version
go mod download
