#!/usr/bin/env bash
# Installs the Yjs oracle (interop/yjs: real yjs + lib0 from package-lock.json)
# when missing or stale, then runs the crdt/yjs tests that compare the Go
# engine with it (golden vectors, seeded differential histories, text change
# deltas). `make
# yjs-oracle` (and so `make test`) calls this.
#
# Long run: YJS_DIFF_CASES=20000 YJS_CHANGE_CASES=20000 YJS_DIFF_SEED=1 bash interop/yjs/scripts/check.sh
set -euo pipefail
cd "$(dirname "$0")"
bash ./install.sh
cd ../../..
COLLABD_YJS_ORACLE=1 ${GO:-go} test -count=1 -run 'Yjs|Golden' ./crdt/yjs/ ./protocol/yjs/
