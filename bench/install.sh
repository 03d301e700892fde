#!/usr/bin/env bash
# Installs what the benchmark harness needs on a fresh Debian machine, each
# part only if it is missing: HAProxy (the yardstick proxy) and etcd
# (etcd-server: the control-plane simulation's replicas share an etcd
# cluster). The load
# generator is our own (bench/loadgen), built with the harness, so nothing
# else is fetched.
set -euo pipefail
need=()
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
  # The packages start system services; the harness runs its own.
  $SUDO systemctl disable --now haproxy etcd >/dev/null 2>&1 || true
fi
# sed reads all of the output, so haproxy never gets SIGPIPE under pipefail.
haproxy -v | sed -n 1p
go version
