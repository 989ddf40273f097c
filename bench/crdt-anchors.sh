#!/usr/bin/env bash
# Measures collabd's CRDT beside the reference libraries (Yjs, json-joy,
# diamond-types, Loro; Automerge with LIBS=...) on the same traces, in one run,
# and prints ratios. Usage (from the repository root):
#
#   bench/crdt-anchors.sh                 # automerge-paper, seph-blog1, friendsforever
#   TRACES=automerge-paper RUNS=5 bench/crdt-anchors.sh
#
# Needs Node 20+ and npm (packages from the npm registry). The anchor scripts
# live in ../shared/anchors/crdt; they are copied to a work directory because
# shared/ may be read-only.
set -euo pipefail
cd "$(dirname "$0")/.."
ANCHORS=${ANCHORS:-../shared/anchors/crdt}
TRACE_DIR=${TRACE_DIR:-$(cd ../shared/traces && pwd)}
TRACES=${TRACES:-automerge-paper,seph-blog1,friendsforever}
LIBS=${LIBS:-yjs,json-joy,diamond-types-node,loro}
RUNS=${RUNS:-3}
WORK=${WORK:-${TMPDIR:-/tmp}/collabd-crdt-anchors}

if [ ! -d "$WORK/node_modules" ]; then
  rm -rf "$WORK" && cp -r "$ANCHORS" "$WORK" && chmod -R u+w "$WORK"
  (cd "$WORK" && npm ci --no-audit --no-fund >/dev/null)
fi
rm -rf "$WORK/results/raw" && mkdir -p "$WORK/results/raw"

echo "== reference libraries ($LIBS; $RUNS runs each)" >&2
(cd "$WORK" && TRACE_DIRS="$TRACE_DIR" node bench.mjs --traces "$TRACES" --libs "$LIBS" --runs "$RUNS" --no-go --no-report >&2)

echo "== collabd" >&2
files=()
IFS=, read -ra names <<<"$TRACES"
for n in "${names[@]}"; do files+=("$TRACE_DIR/$n.json.gz"); done
go build -o "$WORK/collabd" ./cmd/collabd
"$WORK/collabd" trace -runs "$RUNS" "${files[@]}" | tee "$WORK/collabd.txt" >&2

node bench/ratios.mjs "$WORK/results/raw" "$WORK/collabd.txt"
