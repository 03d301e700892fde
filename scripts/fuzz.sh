#!/usr/bin/env bash
# Runs every Fuzz* target in the module for the given time (default 10s).
set -euo pipefail
fuzztime=${1:-10s}
cd "$(dirname "$0")/.."
status=0
while IFS= read -r file; do
  dir=$(dirname "$file")
  # bench/ is a module of its own: run its targets from its root.
  mod=.
  if [[ $dir == bench/* ]]; then mod=bench; dir=${dir#bench/}; fi
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    echo "fuzz ./$dir $target ($fuzztime)"
    if ! (cd "$mod" && go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "./$dir") >/tmp/fuzz-$target.log 2>&1; then
      # On a loaded machine the fuzzing coordinator can report "context
      # deadline exceeded" when -fuzztime ends while a worker is still
      # minimizing an input; no failing input is written then. That is
      # the toolchain's timeout, not a finding: run the target once more.
      if grep -q 'context deadline exceeded' /tmp/fuzz-$target.log && ! grep -q 'Failing input written' /tmp/fuzz-$target.log; then
        echo "  (coordinator timeout without a failing input; running again)"
        if (cd "$mod" && go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "./$dir") >/tmp/fuzz-$target.log 2>&1; then
          continue
        fi
      fi
      cat /tmp/fuzz-$target.log
      status=1
    fi
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' || true)
exit $status
