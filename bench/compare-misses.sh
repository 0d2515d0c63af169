#!/usr/bin/env bash
# compare-misses.sh: 1 KiB misses of two Outpost builds, requests per PoP
# CPU-second, alternating runs on a pinned PoP (CPU 0) with wrk and the
# harness origin on CPU 1. Every request is a new object, so every one is
# a miss that goes to the origin.
#
#   bench/compare-misses.sh OLD_BINARY NEW_BINARY [PAIRS]
#
# Build an older one with: git worktree add /tmp/old COMMIT && (cd /tmp/old
# && go build -o /tmp/outpost-old ./cmd/outpost). Needs wrk, taskset, bc.
# Run it on a quiet machine: it prints each run and the medians.
set -euo pipefail
OLD=$1; NEW=$2; PAIRS=${3:-5}
cd "$(dirname "$0")/.."
ROOT=$PWD
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd bench/harness/origin && go build -o "$TMP/origin" .)
PORT=18481; ADMIN=18482; OPORT=18480
cat > "$TMP/cdn.yaml" <<YAML
services:
  - name: demo
    hostnames: [127.0.0.1]
    origin:
      servers: [{url: "http://127.0.0.1:$OPORT"}]
    cache: {max_object: 1MiB}
pops:
  - name: bench
    location: {lat: 50, lon: 14}
    listen: 127.0.0.1:$PORT
    admin: 127.0.0.1:$ADMIN
    cache_size: 1GiB
YAML
HZ=$(getconf CLK_TCK)
run() { # BINARY -> requests per PoP CPU-second
  taskset -c 1 "$TMP/origin" -addr 127.0.0.1:$OPORT >/dev/null 2>&1 & local opid=$!
  taskset -c 0 "$1" pop --config "$TMP/cdn.yaml" >/dev/null 2>&1 & local pid=$!
  for _ in $(seq 200); do curl -sf http://127.0.0.1:$ADMIN/healthz >/dev/null 2>&1 && break; sleep 0.05; done
  BENCH_MODE=unique BENCH_SIZE=1k BENCH_RUNID=w$RANDOM taskset -c 1 wrk -t1 -c64 -d2s -s "$ROOT/bench/harness/lua/bench.lua" http://127.0.0.1:$PORT/ >/dev/null
  read -r u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat)
  local out; out=$(BENCH_MODE=unique BENCH_SIZE=1k BENCH_RUNID=r$RANDOM taskset -c 1 wrk -t1 -c64 -d5s -s "$ROOT/bench/harness/lua/bench.lua" http://127.0.0.1:$PORT/)
  read -r u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat)
  kill $pid $opid; wait $pid $opid 2>/dev/null || true
  local reqs; reqs=$(echo "$out" | grep -o 'reqs=[0-9]*' | cut -d= -f2)
  echo "$reqs * $HZ / (($u1 - $u0) + ($s1 - $s0))" | bc
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
: > "$TMP/old"; : > "$TMP/new"
for i in $(seq "$PAIRS"); do
  o=$(run "$OLD"); n=$(run "$NEW")
  echo "pair $i: old $o  new $n"
  echo "$o" >> "$TMP/old"; echo "$n" >> "$TMP/new"
done
mo=$(median < "$TMP/old"); mn=$(median < "$TMP/new")
echo "medians: old $mo  new $mn  new/old $(echo "scale=3; $mn / $mo" | bc)"
