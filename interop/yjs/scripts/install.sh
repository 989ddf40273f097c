#!/usr/bin/env bash
# npm ci in interop/yjs when node_modules is missing or was installed from a
# different package-lock.json (recorded by hash, not by file time).
set -euo pipefail
cd "$(dirname "$0")/.."
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.collabd-lock-sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  npm ci --no-audit --no-fund
  echo "$lock_hash" > "$stamp"
fi
