#!/usr/bin/env bash
# Cluster benchmarks (BENCHMARKS.md "## cluster"): the same `collabd bench`
# runs against one `collabd serve` (bbolt) and against three
# `collabd serve --nats-embedded` processes on loopback forming one
# JetStream cluster, with --nats-replicas 3 and then 1, all in one run so
# the numbers can be read as same-run ratios. Usage (from the repository
# root):
#
#   bench/cluster.sh                               # everything, ~5 min
#   MODES="single r3" OUT=/tmp/cl bench/cluster.sh # a subset
#   MODES=r3 SCENARIOS=idle DOCS=9000 bench/cluster.sh
#   SUBS=100 DURATION=20s DOCS=3000 bench/cluster.sh
#
# Per mode (single, r3, r1) it runs:
#   fanout-local      writer and SUBS subscribers on the document's owner node
#   fanout-forwarded  writer on another node, subscribers on the two non-owner
#                     nodes (every session forwarded to the owner over NATS)
#                     (cluster modes only)
#   manydocs          MD_DOCS documents x 3 clients, client i on node i%3, each
#                     node's CPU per insert from /proc/PID/stat (--node-pids)
#   idle              DOCS connections, own document each, spread over the nodes:
#                     documents per node (collabd_cluster_owned_documents), RSS
#                     per connection per node, CPU while idle (lease renewals)
# and writes one JSON per run, commands.txt (exact command lines),
# loadavg.txt (load average before each run), baseline.txt (each server's
# CPU over BASELINE=10 seconds with no client, after it is ready) and
# results.md to $OUT.
#
# The 2 cores are shared by the three nodes, the generator and whatever
# else runs on the machine: this shows latency and CPU per op, not
# throughput scaling.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-${TMPDIR:-/tmp}/collabd-cluster-bench/$(date +%Y%m%d-%H%M%S)}
MODES=${MODES:-"single r3 r1"}
SCENARIOS=${SCENARIOS:-"fanout manydocs idle"}
SUBS=${SUBS:-100}
DURATION=${DURATION:-20s}
MD_DOCS=${MD_DOCS:-100}
DOCS=${DOCS:-3000}
BASE_PORT=${BASE_PORT:-18180}   # HTTP: BASE_PORT (single), +1..+3 (nodes); routes: +11..+13
WORK=$(mktemp -d "${TMPDIR:-/tmp}/collabd-cluster.XXXXXX")
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"

go build -o "$WORK/collabd" ./cmd/collabd
BIN=$WORK/collabd
PIDS=()      # the running servers, in node order
PORTS=()     # their HTTP ports
LIMITS=(--max-conns 20000 --max-conns-per-ip 20000 --log-level warn)

stop_all() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=() PORTS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

# wait_ready PORT: /readyz answers 200 (bounded: 60 s).
wait_ready() {
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  echo "server on :$1 not ready after 60 s" >&2
  exit 1
}

start_single() {
  rm -rf "$WORK/single"
  "$BIN" serve --addr "127.0.0.1:$BASE_PORT" --data "$WORK/single" "${LIMITS[@]}" \
    >>"$OUT/serve-single.log" 2>&1 &
  PIDS=($!) PORTS=("$BASE_PORT")
  wait_ready "$BASE_PORT"
}

# start_cluster R: three nodes, --nats-replicas R.
start_cluster() {
  local r=$1 i routes=""
  for i in 1 2 3; do routes+="${routes:+,}nats://127.0.0.1:$((BASE_PORT + 10 + i))"; done
  PIDS=() PORTS=()
  for i in 1 2 3; do
    rm -rf "$WORK/n$i"
    "$BIN" serve --addr "127.0.0.1:$((BASE_PORT + i))" --data "$WORK/n$i" "${LIMITS[@]}" \
      --nats-embedded --node-id "n$i" --nats-replicas "$r" \
      --nats-cluster-listen "127.0.0.1:$((BASE_PORT + 10 + i))" --nats-routes "$routes" \
      >>"$OUT/serve-n$i-r$r.log" 2>&1 &
    PIDS+=($!) PORTS+=($((BASE_PORT + i)))
  done
  for i in 0 1 2; do wait_ready "${PORTS[$i]}"; done
}

ws() { echo "ws://127.0.0.1:$1/v1/ws"; }
owned() { curl -s "http://127.0.0.1:$1/metrics" | awk '$1 == "collabd_cluster_owned_documents" {print $2}'; }

# create_owned DOC: creates DOC (empty, native) and prints the index (0..2)
# of the node that owns it: the one whose owned-documents gauge went up.
create_owned() {
  local doc=$1 i before=() after
  for i in 0 1 2; do before+=("$(owned "${PORTS[$i]}")"); done
  curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
    -d "{\"id\":\"$doc\",\"kind\":\"native\"}" "http://127.0.0.1:${PORTS[0]}/v1/docs"
  for i in 0 1 2; do
    after=$(owned "${PORTS[$i]}")
    if [ "$after" != "${before[$i]}" ]; then echo "$i"; return 0; fi
  done
  echo "no node took $doc" >&2
  exit 1
}

# bench NAME SCENARIO ARGS...: one `collabd bench` run.
bench() {
  local name=$1; shift
  local cmd=("$BIN" bench "$@" --json "$OUT/$name.json")
  echo "$name: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loadavg.txt"
  echo "${cmd[*]}" | sed "s|$BIN|collabd|" >>"$OUT/commands.txt"
  echo "== $name (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "${cmd[@]}" | tee "$OUT/$name.txt" || echo "($name: a check failed or the run ended early; see $OUT/$name.txt)" >&2
}

pids() { local IFS=,; echo "${PIDS[*]}"; }
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

# cpu_ticks PID: utime+stime in clock ticks (/proc/PID/stat fields 14, 15).
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }

# baseline MODE: each running server's CPU over BASELINE seconds with no
# client (membership and lease heartbeats, raft, the pinger), to subtract
# from the per-insert figures.
baseline() {
  local t0=() t1=() i hz out="" secs=${BASELINE:-10}
  hz=$(getconf CLK_TCK)
  for i in "${!PIDS[@]}"; do t0+=("$(cpu_ticks "${PIDS[$i]}")"); done
  sleep "$secs"
  for i in "${!PIDS[@]}"; do
    t1=$(cpu_ticks "${PIDS[$i]}")
    out+=" node $((i + 1)) $(awk -v a="${t0[$i]}" -v b="$t1" -v s="$secs" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz / s * 100}') %"
  done
  echo "$1 baseline cpu over ${secs}s, no clients (load average $(cut -d' ' -f1-3 /proc/loadavg)):$out" | tee -a "$OUT/baseline.txt" >&2
}
urls() { local p out=""; for p in "${PORTS[@]}"; do out+="${out:+,}$(ws "$p")"; done; echo "$out"; }

for mode in $MODES; do
  case $mode in
    single)
      start_single
      baseline single
      u=$(ws "$BASE_PORT")
      want fanout && bench single-fanout-local fanout --subs "$SUBS" --duration "$DURATION" --url "$u" \
        --server-pid "${PIDS[0]}" --node-pids "$(pids)"
      want manydocs && bench single-manydocs manydocs --docs "$MD_DOCS" --per-doc 3 --rate 2 --duration "$DURATION" \
        --url "$u" --server-pid "${PIDS[0]}" --node-pids "$(pids)"
      want idle && bench single-idle idle --conns "$DOCS" --steps "$DOCS" --per-doc 1 --hold 15s \
        --url "$u" --server-pid "${PIDS[0]}" --node-pids "$(pids)"
      stop_all
      ;;
    r1|r3)
      start_cluster "${mode#r}"
      baseline "$mode"
      if want fanout; then
        doc=clbench-local-$RANDOM$RANDOM
        o=$(create_owned "$doc")
        bench "$mode-fanout-local" fanout --subs "$SUBS" --duration "$DURATION" --doc "$doc" \
          --url "$(ws "${PORTS[$o]}")" --server-pid "${PIDS[$o]}" --node-pids "$(pids)"
        doc=clbench-fwd-$RANDOM$RANDOM
        o=$(create_owned "$doc")
        a=$(( (o + 1) % 3 )) b=$(( (o + 2) % 3 ))
        bench "$mode-fanout-forwarded" fanout --subs "$SUBS" --duration "$DURATION" --doc "$doc" \
          --url "$(ws "${PORTS[$a]}")" --writer-url "$(ws "${PORTS[$a]}")" \
          --urls "$(ws "${PORTS[$a]}"),$(ws "${PORTS[$b]}")" --server-pid "${PIDS[$o]}" --node-pids "$(pids)"
      fi
      want manydocs && bench "$mode-manydocs" manydocs --docs "$MD_DOCS" --per-doc 3 --rate 2 --duration "$DURATION" \
        --url "$(ws "${PORTS[0]}")" --urls "$(urls)" --node-pids "$(pids)"
      want idle && bench "$mode-idle" idle --conns "$DOCS" --steps "$DOCS" --per-doc 1 --hold 15s \
        --url "$(ws "${PORTS[0]}")" --urls "$(urls)" --node-pids "$(pids)"
      stop_all
      ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
done

{
  echo "# collabd cluster bench ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r))"
  echo
  echo "Commands: commands.txt; load average before each run: loadavg.txt."
  echo
  for f in "$OUT"/*.json; do "$BIN" bench summarize "$f"; done
} >"$OUT/results.md"
echo "wrote $OUT/results.md" >&2
