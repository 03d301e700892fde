#!/usr/bin/env bash
# Runs every Fuzz* target in the module for the given time (default 10s).
#
# Each package's fuzzing test binary is built once (go test -c -fuzz) and
# run once per target, as go test would run it: from the package's
# directory, with the fuzz cache go test uses. Building it again for every
# target cost a link per target.
#
# FUZZJOBS targets run at once (default 1), each with its share of the
# CPUs as fuzzing workers. On two CPUs FUZZJOBS=2 halves the step's time
# (two targets side by side, a worker each) but each target then runs a
# third to a half of the inputs it runs alone with two workers, so the
# default keeps one target at a time; each target fuzzes for the whole
# given time either way.
set -euo pipefail
fuzztime=${1:-10s}
cd "$(dirname "$0")/.."
root=$(pwd)
cpus=$(nproc 2>/dev/null || echo 2)
jobs=${FUZZJOBS:-1}
((jobs >= 1)) || jobs=1
workers=$((cpus / jobs))
((workers >= 1)) || workers=1
gocache=$(go env GOCACHE)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run_target runs one target of a built binary; its output goes to
# /tmp/fuzz-<target>.log, and a failure is marked in $work/failed.
run_target() {
  local bin=$1 dir=$2 pkg=$3 target=$4 log=/tmp/fuzz-$4.log
  # No minimization: in a run of a few seconds the coordinator spends
  # time shrinking each new interesting input, and when -fuzztime ends
  # while a worker is still at it, it reports "context deadline
  # exceeded" (seen on a loaded two-core machine, twice in a row for one
  # target). A failing input is still written, whole.
  local args=(-test.run='^$' -test.fuzz="^${target}\$" -test.fuzztime="$fuzztime"
    -test.fuzzminimizetime=0s
    -test.parallel="$workers" -test.fuzzcachedir="$gocache/fuzz/$pkg")
  if (cd "$dir" && "$bin" "${args[@]}") >"$log" 2>&1; then
    return 0
  fi
  # On a loaded machine the fuzzing coordinator can report "context
  # deadline exceeded" when -fuzztime ends while a worker is still
  # minimizing an input; no failing input is written then. That is the
  # toolchain's timeout, not a finding: run the target once more.
  if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
    echo "  $target: coordinator timeout without a failing input; running again"
    if (cd "$dir" && "$bin" "${args[@]}") >"$log" 2>&1; then
      return 0
    fi
  fi
  echo "--- fuzz $pkg $target failed:"
  cat "$log"
  touch "$work/failed"
}

status=0
n=0
running=0
while IFS= read -r dir; do
  # bench/ is a module of its own: build its targets from its root.
  mod=.
  rel=$dir
  if [[ $dir == bench/* ]]; then mod=bench; rel=${dir#bench/}; fi
  targets=$(git ls-files -- "$dir"/*_test.go | xargs cat | grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/')
  first=$(head -n1 <<<"$targets")
  n=$((n + 1))
  bin=$work/$n.test
  pkg=$(cd "$mod" && go list "./$rel")
  echo "build $pkg"
  if ! (cd "$mod" && go test -c -fuzz="^${first}\$" -o "$bin" "./$rel"); then
    status=1
    continue
  fi
  for target in $targets; do
    if ((running >= jobs)); then
      wait -n || true
      running=$((running - 1))
    fi
    echo "fuzz ./$dir $target ($fuzztime)"
    run_target "$bin" "$root/$dir" "$pkg" "$target" &
    running=$((running + 1))
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | xargs -n1 dirname | sort -u || true)
wait
[[ -e $work/failed ]] && status=1
exit $status
