#!/usr/bin/env bash
# Rebuilds the console (web/console) from its lockfile and fails if the
# bundle committed in internal/consoleui/dist differs from the rebuild:
# the embedded console must be exactly what its sources build.
set -euo pipefail
cd "$(dirname "$0")/.."
dist=internal/consoleui/dist
(
  cd web/console
  npm ci --no-audit --no-fund --loglevel=error
  npm run --silent build
)
if ! git diff --exit-code --stat -- "$dist" || [ -n "$(git ls-files --others --exclude-standard -- "$dist")" ]; then
  echo "check-console: $dist differs from a rebuild of web/console;" >&2
  echo "run 'cd web/console && npm ci && npm run build' and commit $dist" >&2
  git ls-files --others --exclude-standard -- "$dist" >&2
  exit 1
fi
echo "check-console: $dist is what web/console builds"
