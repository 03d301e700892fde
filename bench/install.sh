#!/usr/bin/env bash
# Installs what the benchmark harness needs on a fresh Debian machine, each
# part only if it is missing: HAProxy (the yardstick proxy). The load
# generator is our own (bench/loadgen), built with the harness, so nothing
# else is fetched.
set -euo pipefail
if ! command -v haproxy >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends haproxy
  # The package starts a system HAProxy; the harness runs its own.
  $SUDO systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
# sed reads all of the output, so haproxy never gets SIGPIPE under pipefail.
haproxy -v | sed -n 1p
go version
