#!/usr/bin/env bash
# Installs the Yjs oracle (interop/yjs: real yjs + lib0 from package-lock.json)
# when missing or stale, then runs the Go/Yjs differential and golden tests of
# crdt/yjs against it. `make yjs-oracle` (and so `make test`) calls this.
# `npm ci` runs only when node_modules is missing or was installed from a
# different package-lock.json (recorded by hash, not by file time).
#
# Long run: YJS_DIFF_CASES=20000 YJS_DIFF_SEED=1 bash interop/yjs/scripts/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.collabd-lock-sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  npm ci --no-audit --no-fund
  echo "$lock_hash" > "$stamp"
fi
cd ../..
COLLABD_YJS_ORACLE=1 ${GO:-go} test -count=1 -run 'Yjs|Golden' ./crdt/yjs/
