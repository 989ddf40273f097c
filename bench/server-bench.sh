#!/usr/bin/env bash
# Runs every `collabd bench` scenario against a real `collabd serve` on
# loopback, one fresh server per run, sampled from /proc (--server-pid) and
# pprof (--debug-url). Writes one JSON per run and results.md (markdown) to
# $OUT. Usage (from the repository root):
#
#   bench/server-bench.sh                                  # everything (~10 min)
#   SCENARIOS="fanout coldjoin" bench/server-bench.sh      # a subset
#   FANOUT_SUBS="100 500" DURATION=10s OUT=/tmp/b bench/server-bench.sh
#
# The generator shares the machine with the server: read its "generator cpu"
# beside "server cpu" before blaming either.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-${TMPDIR:-/tmp}/collabd-bench/$(date +%Y%m%d-%H%M%S)}
SCENARIOS=${SCENARIOS:-"fanout manydocs idle idle-shared coldjoin churn presence"}
FANOUT_SUBS=${FANOUT_SUBS:-"10 100 500 1000"}
IDLE_CONNS=${IDLE_CONNS:-10000}
PORT=${PORT:-18080}
DEBUG_PORT=${DEBUG_PORT:-16061}
DURATION=${DURATION:-}          # empty: each scenario's default
WORK=$(mktemp -d "${TMPDIR:-/tmp}/collabd-bench.XXXXXX")
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"       # both processes hold one descriptor per connection

go build -o "$WORK/collabd" ./cmd/collabd
BIN=$WORK/collabd
URL=ws://127.0.0.1:$PORT/v1/ws
SERVER_PID=

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

start_server() {
  rm -rf "$WORK/data"
  "$BIN" serve --addr "127.0.0.1:$PORT" --data "$WORK/data" --log-level warn \
    --max-conns 20000 --max-conns-per-ip 20000 --debug-addr "127.0.0.1:$DEBUG_PORT" \
    >"$WORK/serve.out" 2>>"$OUT/serve.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do   # bounded: 10 s
    grep -q '^listening on' "$WORK/serve.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "collabd serve did not start" >&2
  exit 1
}

# bench NAME SCENARIO ARGS...: one run on a fresh server.
bench() {
  local name=$1; shift
  local dur=()
  [ -n "$DURATION" ] && dur=(--duration "$DURATION")
  start_server
  local cmd=("$BIN" bench "$@" --url "$URL" --server-pid "$SERVER_PID"
    --debug-url "http://127.0.0.1:$DEBUG_PORT" --json "$OUT/$name.json" "${dur[@]}")
  echo "${cmd[*]}" | sed "s|$BIN|collabd|" >>"$OUT/commands.txt"
  echo "== $name" >&2
  "${cmd[@]}" | tee "$OUT/$name.txt" || echo "($name: a check failed or the run ended early; see $OUT/$name.txt)" >&2
  stop_server
}

for s in $SCENARIOS; do
  case $s in
    fanout)      for n in $FANOUT_SUBS; do bench "fanout-n$n" fanout --subs "$n"; done ;;
    manydocs)    bench manydocs manydocs --docs 200 --per-doc 5 --rate 2 ;;
    idle)        bench idle-own idle --conns "$IDLE_CONNS" --per-doc 1 ;;
    idle-shared) bench idle-shared idle --conns "$IDLE_CONNS" --per-doc 1000 ;;
    coldjoin)    bench coldjoin coldjoin --chars 100000 --chunk 5 ;;
    churn)       bench churn churn --workers 20 --duration 20s ;;
    presence)    bench presence presence --peers 100 --hz 30 ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done

{
  echo "# collabd bench results ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r))"
  echo
  echo "Commands: see commands.txt. Server: collabd serve, fresh per run."
  echo
  for f in "$OUT"/*.json; do "$BIN" bench summarize "$f"; done
} >"$OUT/results.md"
echo "wrote $OUT/results.md" >&2
