#!/usr/bin/env bash
# Measures the Go Yjs engine (crdt/yjs) beside real Yjs on the editing traces,
# in one run, and prints ratios (BENCHMARKS.md "## yjs engine"). From the
# repository root:
#
#   bench/yjs-engine.sh                      # automerge-paper, seph-blog1, friendsforever
#   TRACES=automerge-paper RUNS=5 bench/yjs-engine.sh
#
# interop/yjs/traces.mjs turns each trace into Yjs updates (one per
# transaction, as a Yjs client sends them) and times Yjs on them; then the
# crdt/yjs trace benchmarks replay the same updates.
set -euo pipefail
cd "$(dirname "$0")/.."
TRACE_DIR=${TRACE_DIR:-$(cd ../shared/traces && pwd)}
TRACES=${TRACES:-automerge-paper,seph-blog1,friendsforever}
RUNS=${RUNS:-3}
WORK=${WORK:-${TMPDIR:-/tmp}/collabd-yjs-engine}
mkdir -p "$WORK"
bash interop/yjs/scripts/install.sh >&2

files=()
IFS=, read -ra names <<<"$TRACES"
for n in "${names[@]}"; do files+=("$TRACE_DIR/$n.json.gz"); done
echo "== Yjs 13.6.33 ($RUNS runs, median)" >&2
(cd interop/yjs && node --expose-gc traces.mjs --out "$WORK" --runs "$RUNS" "${files[@]}" >&2)

echo "== crdt/yjs" >&2
pattern=$(IFS='|'; echo "${names[*]}")
COLLABD_YJS_TRACE_UPDATES="$WORK" go test -run '^$' -bench "Trace.*/($pattern)\$" -benchtime "${RUNS}x" -count 1 ./crdt/yjs/ | tee "$WORK/go.txt" >&2
node bench/yjs-ratios.mjs "$WORK" "$WORK/go.txt"
