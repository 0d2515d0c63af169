#!/usr/bin/env bash
# bench/sendfloor.sh: the floor under the PoP's disk hits. Runs
# bench/sendfloor (a Go program that answers each GET with one of N tmpfs
# files, head with write(2), body with sendfile(2), nothing else) under the
# load of bench/anchors.sh's disk test, and prints its requests per server
# CPU-second, to set beside that test's Outpost and nginx rows
# (docs/storage.md). Needs wrk. Pinned: the server on CPU
# BENCH_SERVER_CPU (1), wrk on BENCH_LOAD_CPU (0).
#
#   bench/sendfloor.sh                 # 1 MiB and 100 KiB, 2,000 files each
#   BENCH_DISK_SIZES=1m BENCH_DISK_N=200 BENCH_DURATION=5 bench/sendfloor.sh
#   BENCH_SENDFLOOR_OFFSET=700 bench/sendfloor.sh   # bodies 700 bytes into their files
#   BENCH_SENDFLOOR_RAW=false bench/sendfloor.sh    # system calls through the scheduler
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${BENCH_DISK_SIZES:-"100k 1m"}
N=${BENCH_DISK_N:-2000}
D=${BENCH_DURATION:-10}
SCPU=${BENCH_SERVER_CPU:-1}
LCPU=${BENCH_LOAD_CPU:-0}
ADDR=${BENCH_SENDFLOOR_ADDR:-127.0.0.1:18700}
command -v wrk >/dev/null || { echo "sendfloor: wrk is needed" >&2; exit 1; }
TMP=$(mktemp -d)
PID=
cleanup() { [ -z "$PID" ] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }; rm -rf "$TMP"; }
trap cleanup EXIT
(cd "$ROOT" && go build -o "$TMP/sendfloor" ./bench/sendfloor)
bytes() { case $1 in *k) echo $(( ${1%k} << 10 )) ;; *m) echo $(( ${1%m} << 20 )) ;; *) echo "$1" ;; esac; }
load() {  # SECONDS SEQ SIZE
  env BENCH_MODE=zipf BENCH_SEQ="$2" BENCH_S=0 BENCH_N="$N" BENCH_SIZES="$3" taskset -c "$LCPU" \
    wrk -t1 -c64 -d"$1"s -s "$ROOT/bench/harness/lua/bench.lua" "http://$ADDR"
}
printf 'size\tfiles\trequests\tsrv_cpu_s\trps_per_srv_cpu\n'
for s in $SIZES; do
  taskset -c "$SCPU" "$TMP/sendfloor" -addr "$ADDR" -n "$N" -size "$(bytes "$s")" -offset "${BENCH_SENDFLOOR_OFFSET:-0}" -raw="${BENCH_SENDFLOOR_RAW:-true}" >"$TMP/out" 2>&1 &
  PID=$!
  for _ in $(seq 600); do grep -q ready "$TMP/out" && break; kill -0 "$PID" 2>/dev/null || { cat "$TMP/out" >&2; exit 1; }; sleep 0.1; done
  load 3 1 "$s" >/dev/null 2>&1 || true   # one walk: every file's pages touched
  tick=$(getconf CLK_TCK)
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$PID/stat")
  out=$(load "$D" 0 "$s" 2>&1)
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$PID/stat")
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  reqs=$(echo "$out" | grep -o 'reqs=[0-9]*' | cut -d= -f2)
  cpu=$(echo "scale=2; ($u1 - $u0 + $s1 - $s0) / $tick" | bc)
  rate=-; [ "$(echo "$cpu > 0" | bc)" = 1 ] && rate=$(echo "$reqs / $cpu" | bc)
  printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$N" "$reqs" "$cpu" "$rate"
done
