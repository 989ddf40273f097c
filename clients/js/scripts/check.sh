#!/usr/bin/env bash
# Installs the JS client's dependencies when needed, builds it and runs its
# tests. `make js` (and so `make test` and CI) calls this on a clean clone.
# `npm ci` runs only when node_modules is missing or was installed from a
# different package-lock.json (recorded by hash, not by file time: a git
# checkout sets times arbitrarily).
set -euo pipefail
cd "$(dirname "$0")/.."
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.collabd-lock-sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  npm ci --no-audit --no-fund
  echo "$lock_hash" > "$stamp"
fi
npm run --silent build
npm test
# The packed package in a fresh app: both module resolutions, esbuild, Node.
node scripts/pack-check.mjs
