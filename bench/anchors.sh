#!/usr/bin/env bash
# bench/anchors.sh: Outpost's PoP against nginx proxy_cache, Varnish and a
# bare Go net/http server, in one run of the shared anchor harness
# (bench/harness/http-anchors.sh, the team's anchor harness kept in the repo), each server pinned to one core, and the
# PoP's requests per server CPU-second as a ratio to nginx's.
#
# Usage:  bench/anchors.sh                         (hits, 1k and 100k, pinned: ~3 min)
#         BENCH_SIZES="1k 10k 100k 1m" BENCH_TESTS="hit zipf miss" bench/anchors.sh
#         BENCH_TESTS="h2 tls" BENCH_H2_SIZES=1k bench/anchors.sh   (h2c, and h1/h2 over TLS, with h2load)
#
# Needs (Debian): nginx varnish wrk nghttp2-client curl openssl bc
#   apt-get install -y --no-install-recommends nginx varnish wrk nghttp2-client curl openssl bc
# Every knob of the harness (BENCH_*) passes through; see its header. The PoP
# uses the harness origin ($BENCH_ORIGIN) and listens on BENCH_POP_ADDR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${OUTPOST_HARNESS:-$ROOT/bench/harness}/http-anchors.sh
[ -x "$HARNESS" ] || [ -f "$HARNESS" ] || { echo "bench/anchors.sh: harness not found at $HARNESS (set OUTPOST_HARNESS)" >&2; exit 1; }

export BENCH_MODES=${BENCH_MODES:-pinned}
export BENCH_TESTS=${BENCH_TESTS:-hit}
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
    tls: {listen: $POP_TLS, self_signed: true, h2c: true}
YAML
"$BENCH_RUN/outpost" pop --config "$BENCH_RUN/outpost.yaml" --check >&2

export BENCH_EXTRA_NAME=outpost
export BENCH_EXTRA_ADDR=$POP_ADDR
export BENCH_EXTRA_H2C=$POP_ADDR
export BENCH_EXTRA_TLS=$POP_TLS
export BENCH_EXTRA_CMD="$BENCH_RUN/outpost pop --config $BENCH_RUN/outpost.yaml --log-level warn"
bash "$HARNESS"

# Ratios: Outpost's requests per server CPU-second over each anchor's, for
# the same mode, test and size.
RES=$BENCH_RUN/results.tsv
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
