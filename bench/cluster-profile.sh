#!/usr/bin/env bash
# Profiles one node of a 3-node `collabd serve --nats-embedded` cluster
# (R3 unless REPLICAS is set) while `collabd bench idle` holds CONNS
# connections, each with its own document, spread over the nodes: what an
# idle cluster node spends its CPU on (lease renewals, one KV write per
# owned document every TTL/3) and its heap on. Writes cpu.pb.gz, heap.pb.gz
# and their `go tool pprof -top` to $OUT. Usage (from the repository root):
#
#   OUT=/tmp/clprof bench/cluster-profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-${TMPDIR:-/tmp}/collabd-cluster-profile/$(date +%Y%m%d-%H%M%S)}
CONNS=${CONNS:-3000}
REPLICAS=${REPLICAS:-3}
SECONDS_CPU=${SECONDS_CPU:-20}
BASE_PORT=${BASE_PORT:-18280}   # HTTP +1..+3, routes +11..+13, metrics/pprof +21..+23
WORK=$(mktemp -d "${TMPDIR:-/tmp}/collabd-clprof.XXXXXX")
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
go build -o "$WORK/collabd" ./cmd/collabd
BIN=$WORK/collabd
PIDS=()
BENCH=
cleanup() {
  local p
  [ -n "$BENCH" ] && kill -INT "$BENCH" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}" $BENCH; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

routes=""
for i in 1 2 3; do routes+="${routes:+,}nats://127.0.0.1:$((BASE_PORT + 10 + i))"; done
for i in 1 2 3; do
  "$BIN" serve --addr "127.0.0.1:$((BASE_PORT + i))" --data "$WORK/n$i" --log-level warn \
    --max-conns 20000 --max-conns-per-ip 20000 --metrics-addr "127.0.0.1:$((BASE_PORT + 20 + i))" \
    --nats-embedded --node-id "n$i" --nats-replicas "$REPLICAS" \
    --nats-cluster-listen "127.0.0.1:$((BASE_PORT + 10 + i))" --nats-routes "$routes" \
    >>"$OUT/serve-n$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 600); do   # bounded: 60 s
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((BASE_PORT + i))/readyz")" = 200 ] && break
    sleep 0.1
  done
done
owned() { curl -s "http://127.0.0.1:$((BASE_PORT + 20 + $1))/metrics" | awk '$1 == "collabd_cluster_owned_documents" {s += $2} END {print s + 0}'; }

urls="ws://127.0.0.1:$((BASE_PORT + 1))/v1/ws,ws://127.0.0.1:$((BASE_PORT + 2))/v1/ws,ws://127.0.0.1:$((BASE_PORT + 3))/v1/ws"
"$BIN" bench idle --conns "$CONNS" --steps "$CONNS" --per-doc 1 --hold $((SECONDS_CPU + 30))s \
  --url "ws://127.0.0.1:$((BASE_PORT + 1))/v1/ws" --urls "$urls" --node-pids "$(IFS=,; echo "${PIDS[*]}")" \
  --progress 0 --json "$OUT/idle.json" >"$OUT/idle.txt" 2>&1 &
BENCH=$!
# Wait (bounded: 120 s) until the nodes own every document, then profile n1.
for _ in $(seq 1200); do
  [ $(( $(owned 1) + $(owned 2) + $(owned 3) )) -ge "$CONNS" ] && break
  sleep 0.1
done
echo "owned: n1 $(owned 1), n2 $(owned 2), n3 $(owned 3); load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/owned.txt"
curl -s -o "$OUT/cpu.pb.gz" "http://127.0.0.1:$((BASE_PORT + 21))/debug/pprof/profile?seconds=$SECONDS_CPU"
curl -s -o "$OUT/heap.pb.gz" "http://127.0.0.1:$((BASE_PORT + 21))/debug/pprof/heap?gc=1"
wait "$BENCH" || true
BENCH=
go tool pprof -top -nodecount=40 "$BIN" "$OUT/cpu.pb.gz" >"$OUT/cpu.top.txt" 2>&1
go tool pprof -top -cum -nodecount=60 "$BIN" "$OUT/cpu.pb.gz" >"$OUT/cpu.cum.txt" 2>&1
go tool pprof -top -sample_index=inuse_space -nodecount=40 "$BIN" "$OUT/heap.pb.gz" >"$OUT/heap.top.txt" 2>&1
echo "wrote $OUT" >&2
