#!/usr/bin/env bash
# bench/anchors.sh: Outpost's PoP against nginx proxy_cache, Varnish and a
# bare Go net/http server, in one run of the shared anchor harness
# (bench/harness/http-anchors.sh, the team's anchor harness kept in the repo), each server pinned to one core, and the
# PoP's requests per server CPU-second as a ratio to nginx's.
#
# Usage:  bench/anchors.sh                         (hits, 1k and 100k, pinned: ~3 min)
#         BENCH_SIZES="1k 10k 100k 1m" BENCH_TESTS="hit zipf miss" bench/anchors.sh
#         BENCH_TESTS="h2 tls" BENCH_H2_SIZES=1k bench/anchors.sh   (h2c, and h1/h2 over TLS, with h2load)
#         BENCH_TESTS="h2 tls" BENCH_H3=1 bench/anchors.sh   (then HTTP/3 against the PoP's own HTTP/2)
#         BENCH_TESTS=disk bench/anchors.sh    (hits from the disk tier against nginx's cache files)
#
# HTTP/3 has no anchor (Debian's nginx and h2load lack it): with BENCH_H3=1,
# after the harness, the PoP runs alone on BENCH_SERVER_CPU and
# `outpost bench -proto h2` then `-proto h3` (BENCH_CONNS connections,
# BENCH_DURATION s, on BENCH_LOAD_CPU) ask it for the same 1 KiB and 100 KiB
# hits over TLS; printed: requests per server CPU-second, p99, and h3 / h2.
# The disk test (BENCH_TESTS=disk, alone or with others) runs the harness a
# second time, into $BENCH_RUN/disk, with the PoP's memory tier at
# BENCH_DISK_MEM (1MiB) in front of a cache directory on tmpfs
# (BENCH_DISK_CACHE, 8GiB, min_uses 1), against nginx (BENCH_DISK_TARGETS)
# whose cache files are on tmpfs too: BENCH_DISK_N objects of each of
# BENCH_DISK_SIZES ("100k 1m"), warmed, then asked uniformly, so nearly
# every Outpost hit comes from its disk tier (promoted to memory at the
# tier's pace, a tenth of its size a second) and every nginx hit from its
# files, both out of the page cache. A 1-second smoke run:
#   BENCH_TESTS=disk BENCH_DURATION=1 BENCH_DISK_N=50 BENCH_DISK_SIZES=100k bench/anchors.sh
# Counts that do not depend on the machine's load (writes per response,
# allocations per response, in-process over loopback):
#   go test -run '^$' -bench 'Wire|HTTP1Hit|Miss' -benchmem -count 6 ./pop
#
# Needs (Debian): nginx varnish wrk nghttp2-client curl openssl bc
#   apt-get install -y --no-install-recommends nginx varnish wrk nghttp2-client curl openssl bc
# Every knob of the harness (BENCH_*) passes through; see its header. The PoP
# uses the harness origin ($BENCH_ORIGIN) and listens on BENCH_POP_ADDR.
# BENCH_POP_HTTP2 (outpost or net/http) sets the PoP's tls.http2, the server
# of HTTP/2 over TLS and h2c, and BENCH_POP_TLS_FAST (true or false) its
# tls.fast_path, the HTTP/1.1 fast path over TLS; unset, the PoP's defaults.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${OUTPOST_HARNESS:-$ROOT/bench/harness}/http-anchors.sh
[ -x "$HARNESS" ] || [ -f "$HARNESS" ] || { echo "bench/anchors.sh: harness not found at $HARNESS (set OUTPOST_HARNESS)" >&2; exit 1; }

export BENCH_MODES=${BENCH_MODES:-pinned}
TESTS=${BENCH_TESTS:-hit}
DISK_TEST=
MAIN_TESTS=
for t in $TESTS; do
  if [ "$t" = disk ]; then DISK_TEST=1; else MAIN_TESTS="$MAIN_TESTS $t"; fi
done
export BENCH_SIZES=${BENCH_SIZES:-1k 100k}
export BENCH_DURATION=${BENCH_DURATION:-10}
export BENCH_RUN=${BENCH_RUN:-/tmp/bench-outpost-$(date +%Y%m%d-%H%M%S)}
POP_ADDR=${BENCH_POP_ADDR:-127.0.0.1:18100}
POP_ADMIN=${BENCH_POP_ADMIN:-127.0.0.1:19100}
POP_TLS=${BENCH_POP_TLS:-127.0.0.1:18444}
ORIGIN=127.0.0.1:${BENCH_ORIGIN_PORT:-18080}
mkdir -p "$BENCH_RUN"

echo "building outpost -> $BENCH_RUN/outpost" >&2
(cd "$ROOT" && go build -o "$BENCH_RUN/outpost" ./cmd/outpost)

cat >"$BENCH_RUN/outpost.yaml" <<YAML
# Written by bench/anchors.sh: one PoP in front of the harness origin.
services:
  - name: bench
    hostnames: [127.0.0.1, localhost]
    origin:
      servers: [{url: "http://$ORIGIN"}]
    cache:
      max_object: 64MiB
pops:
  - name: bench
    location: {lat: 0, lon: 0}
    listen: $POP_ADDR
    admin: $POP_ADMIN
    cache_size: 2GiB
    drain: 0s
    # HTTPS (h1 and h2 by ALPN; HTTP/3 on UDP) with an in-memory certificate,
    # and h2c on the plain listener, for the harness's h2 and tls tests.
    tls: {listen: $POP_TLS, self_signed: true, h2c: true${BENCH_POP_HTTP2:+, http2: $BENCH_POP_HTTP2}${BENCH_POP_TLS_FAST:+, fast_path: $BENCH_POP_TLS_FAST}}
YAML
"$BENCH_RUN/outpost" pop --config "$BENCH_RUN/outpost.yaml" --check >&2

export BENCH_EXTRA_NAME=outpost
export BENCH_EXTRA_ADDR=$POP_ADDR
export BENCH_EXTRA_H2C=$POP_ADDR
export BENCH_EXTRA_TLS=$POP_TLS
export BENCH_EXTRA_CMD="$BENCH_RUN/outpost pop --config $BENCH_RUN/outpost.yaml --log-level warn"
if [ -n "$MAIN_TESTS" ]; then
  BENCH_TESTS=$MAIN_TESTS bash "$HARNESS"
fi

DISK_DIR=
cleanup_disk() { [ -z "$DISK_DIR" ] || rm -rf "$DISK_DIR"; }
trap cleanup_disk EXIT
if [ -n "$DISK_TEST" ]; then
  DISK_DIR=$(mktemp -d /dev/shm/bench-outpost-disk.XXXXXX)
  sed -e "s#cache_size: 2GiB#cache_size: ${BENCH_DISK_MEM:-1MiB}\n    disk: [{path: $DISK_DIR, size: ${BENCH_DISK_CACHE:-8GiB}, min_uses: 1}]#" \
    -e '/^    tls:/d' -e '/^    # HTTPS/d' -e '/^    # and h2c/d' \
    "$BENCH_RUN/outpost.yaml" >"$BENCH_RUN/outpost-disk.yaml"
  "$BENCH_RUN/outpost" pop --config "$BENCH_RUN/outpost-disk.yaml" --check >&2
  mkdir -p "$BENCH_RUN/disk"
  disk_cmd="$BENCH_RUN/outpost pop --config $BENCH_RUN/outpost-disk.yaml --log-level warn"
  BENCH_TESTS=disk BENCH_RUN=$BENCH_RUN/disk BENCH_TARGETS=${BENCH_DISK_TARGETS:-nginx} \
    BENCH_EXTRA_H2C= BENCH_EXTRA_TLS= BENCH_EXTRA_CMD=$disk_cmd \
    bash "$HARNESS"
fi

# Ratios: Outpost's requests per server CPU-second over each anchor's, for
# the same mode, test and size.
ratios() {
RES=$1
echo
echo "Outpost / anchor, requests per server CPU-second (same run: $RES)"
awk -F'\t' '
  NR == 1 { next }
  { key = $1 "\t" $3 "\t" $4; v[$2, key] = $11; keys[key] = 1; targets[$2] = 1 }
  END {
    printf "%-9s %-6s %-6s %10s %10s %10s %10s %9s %9s\n", "mode", "test", "size", "outpost", "nginx", "varnish", "go", "/nginx", "/varnish"
    for (k in keys) {
      split(k, p, "\t")
      o = v["outpost", k]; n = v["nginx", k]; va = v["varnish", k]; g = v["go", k]
      if (o == "" || o == "-") continue
      rn = (n + 0 > 0) ? sprintf("%.2f", o / n) : "-"
      rv = (va + 0 > 0) ? sprintf("%.2f", o / va) : "-"
      printf "%-9s %-6s %-6s %10s %10s %10s %10s %9s %9s\n", p[1], p[2], p[3], o, n, va, (g == "" ? "-" : g), rn, rv
    }
  }' "$RES" | sort -k1,1 -k2,2 -k3,3
}
[ -z "$MAIN_TESTS" ] || ratios "$BENCH_RUN/results.tsv"
[ -z "$DISK_TEST" ] || ratios "$BENCH_RUN/disk/results.tsv"

# HTTP/3 against the PoP's own HTTP/2 over TLS, same PoP, same run.
if [ "${BENCH_H3:-}" = 1 ]; then
  # shellcheck source=harness/lib.sh
  RUN=$BENCH_RUN
  . "$(dirname "$HARNESS")/lib.sh"
  trap 'stop_all; cleanup_disk' EXIT
  SCPU=${BENCH_SERVER_CPU:-1} LCPU=${BENCH_LOAD_CPU:-0}
  OPORT=${BENCH_ORIGIN_PORT:-18080}
  start_bg origin-h3 "$LCPU" "$BENCH_RUN/origin" -addr "$ORIGIN"
  wait_tcp 127.0.0.1 "$OPORT" || die "origin did not start"
  start_bg outpost-h3 "$SCPU" $BENCH_EXTRA_CMD
  wait_tcp "${POP_TLS%:*}" "${POP_TLS##*:}" || die "the PoP did not start"
  spid=$(cat "$BENCH_RUN/pids/outpost-h3")
  echo
  echo "HTTP/3 against the PoP's own HTTP/2 over TLS (one PoP on CPU $SCPU, $BENCH_DURATION s each)"
  printf '%-6s %-5s %10s %12s %8s\n' size proto rps per_cpu_s p99_ms
  for size in ${BENCH_H3_SIZES:-1k 100k}; do
    url="https://localhost:${POP_TLS##*:}/obj/$size/hit"
    curl -fsSk -o /dev/null "$url" # the fill
    per2=0
    for proto in h2 h3; do
      c0=$(cpu_ticks "$spid")
      $(pin "$LCPU") "$BENCH_RUN/outpost" bench -proto "$proto" -k -json -c "${BENCH_CONNS:-64}" \
        -duration "${BENCH_DURATION}s" -connect "$POP_TLS" "$url" >"$BENCH_RUN/h3-$proto-$size.json"
      c1=$(cpu_ticks "$spid")
      read -r rps p99 < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["rps"], r["latency_ms"]["p99"])' "$BENCH_RUN/h3-$proto-$size.json")
      # requests over the server CPU of the run (handshakes included)
      per=$(echo "$rps * $BENCH_DURATION / (($c1 - $c0) / $CLK_TCK)" | bc -l)
      printf '%-6s %-5s %10.0f %12.0f %8.2f\n' "$size" "$proto" "$rps" "$per" "$p99"
      [ "$proto" = h2 ] && per2=$per
    done
    printf '%-6s h3/h2 %23.2f\n' "$size" "$(echo "$per / $per2" | bc -l)"
  done
fi
