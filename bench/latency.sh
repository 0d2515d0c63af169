#!/usr/bin/env bash
# bench/latency.sh: tail latency at a fixed rate, the PoP against nginx.
#
# Throughput alone hides queueing: this measures what a client waits at a
# rate both servers can carry. For each protocol, nginx (the harness's
# proxy_cache configuration) is first driven as fast as it answers (closed
# loop, BENCH_CONNS connections, 1 KiB hits) to find its maximum rate; then
# nginx and the PoP in turn are offered half of that rate open loop
# (`outpost bench -rate`: requests are timed from when they were due, so a
# stall counts for every request it delays) and their p99 and p99.9 are
# printed side by side. Each server runs alone, pinned to BENCH_SERVER_CPU,
# the load on BENCH_LOAD_CPU; the same client (`outpost bench`) drives
# both. HTTP/3 has no anchor here (Debian's nginx lacks it): the PoP's
# HTTP/3 is offered the HTTP/2 rate and printed beside its own HTTP/2.
#
# Usage:  bench/latency.sh                       (h1 clear and h2 over TLS, 10 s each: ~2 min)
#         BENCH_LAT_PROTOS="h1 h2 h3" BENCH_DURATION=20 bench/latency.sh
#         BENCH_LAT_FRACTION=0.8 bench/latency.sh  (offer 80% of nginx's maximum instead of half)
#
# Needs (Debian): nginx curl openssl python3 (and go to build).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HARNESS_DIR=${OUTPOST_HARNESS:-$ROOT/bench/harness}
RUN=${BENCH_RUN:-/tmp/bench-outpost-latency-$(date +%Y%m%d-%H%M%S)}
D=${BENCH_DURATION:-10}
C=${BENCH_CONNS:-64}
FRACTION=${BENCH_LAT_FRACTION:-0.5}
PROTOS=${BENCH_LAT_PROTOS:-h1 h2}
SCPU=${BENCH_SERVER_CPU:-1} LCPU=${BENCH_LOAD_CPU:-0}
OPORT=${BENCH_ORIGIN_PORT:-18080}
ORIGIN=127.0.0.1:$OPORT
NPORT=18181 NH2C=18182 NTLS=18543   # nginx
PPORT=18190 PADMIN=19190 PTLS=18544 # the PoP
mkdir -p "$RUN"
# shellcheck source=harness/lib.sh
. "$HARNESS_DIR/lib.sh"
for t in nginx curl openssl python3 go; do command -v $t >/dev/null || die "missing $t"; done
CACHE_DIR=$(mktemp -d /dev/shm/bench-latency-nginx.XXXXXX)
trap 'stop_all; rm -rf "$CACHE_DIR"' EXIT

log "building outpost and the harness origin -> $RUN"
(cd "$ROOT" && go build -o "$RUN/outpost" ./cmd/outpost)
(cd "$HARNESS_DIR/origin" && go build -o "$RUN/origin" .)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=bench.local -keyout "$RUN/tls.key" -out "$RUN/tls.crt" >/dev/null 2>&1
mkdir -p "$CACHE_DIR/c" "$CACHE_DIR/tmp" "$RUN/nginx-body" "$RUN/nginx-fcgi" "$RUN/nginx-uwsgi" "$RUN/nginx-scgi"
chmod 755 "$CACHE_DIR"; chown -R www-data "$CACHE_DIR" 2>/dev/null || true
sed -e "s#@RUN@#$RUN#g" -e "s#@CACHE_DIR@#$CACHE_DIR#g" -e "s#@WORKERS@#1#g" \
    -e "s#@PORT@#$NPORT#g" -e "s#@H2C_PORT@#$NH2C#g" -e "s#@TLS_PORT@#$NTLS#g" \
    -e "s#@ORIGIN@#$ORIGIN#g" "$HARNESS_DIR/conf/nginx.conf.tmpl" >"$RUN/nginx.conf"
cat >"$RUN/outpost.yaml" <<YAML
# Written by bench/latency.sh: one PoP in front of the harness origin.
services:
  - name: bench
    hostnames: [127.0.0.1, localhost]
    origin:
      servers: [{url: "http://$ORIGIN"}]
pops:
  - name: bench
    location: {lat: 0, lon: 0}
    listen: 127.0.0.1:$PPORT
    admin: 127.0.0.1:$PADMIN
    cache_size: 1GiB
    drain: 0s
    tls: {listen: 127.0.0.1:$PTLS, self_signed: true}
YAML
"$RUN/outpost" pop --config "$RUN/outpost.yaml" --check >&2

start_bg origin "$LCPU" "$RUN/origin" -addr "$ORIGIN"
wait_tcp 127.0.0.1 "$OPORT" || die "origin did not start"

# url TARGET PROTO: where the load goes.
url() {
  local port
  case $1/$2 in
    nginx/h1) port=$NPORT ;; nginx/*) port=$NTLS ;;
    outpost/h1) port=$PPORT ;; outpost/*) port=$PTLS ;;
  esac
  if [ "$2" = h1 ]; then echo "http://127.0.0.1:$port/obj/1k/hit"; else echo "https://127.0.0.1:$port/obj/1k/hit"; fi
}
# load TARGET PROTO RATE OUT: one run of outpost bench (RATE 0: closed loop).
load() {
  local u; u=$(url "$1" "$2")
  curl -fsSk -o /dev/null "$u"; curl -fsSk -o /dev/null "$u" # the fill, then a hit
  $(pin "$LCPU") "$RUN/outpost" bench -proto "$2" -k -json -c "$C" -duration "${D}s" -rate "$3" "$u" \
    >"$4" 2>>"$RUN/bench.log"
}
field() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

declare -A RATE
start_target() {
  case $1 in
    nginx) start_bg nginx "$SCPU" nginx -c "$RUN/nginx.conf" -p "$RUN" -e "$RUN/nginx-error.log"
           wait_tcp 127.0.0.1 $NPORT || die "nginx did not start (see $RUN/nginx.log)" ;;
    outpost) start_bg outpost "$SCPU" "$RUN/outpost" pop --config "$RUN/outpost.yaml" --log-level warn
           wait_tcp 127.0.0.1 $PPORT || die "the PoP did not start" ;;
  esac
}

start_target nginx
for p in $PROTOS; do
  [ "$p" = h3 ] && continue
  load nginx "$p" 0 "$RUN/nginx-$p-max.json"
  max=$(field "$RUN/nginx-$p-max.json" 'r["rps"]')
  RATE[$p]=$(python3 -c "print(round($max * $FRACTION))")
  log "nginx $p: $max requests/s at most; offering ${RATE[$p]}/s"
  load nginx "$p" "${RATE[$p]}" "$RUN/nginx-$p-fixed.json"
done
stop_all
start_bg origin "$LCPU" "$RUN/origin" -addr "$ORIGIN"
wait_tcp 127.0.0.1 "$OPORT" || die "origin did not start"
start_target outpost
for p in $PROTOS; do
  r=${RATE[$p]:-${RATE[h2]:-}}
  [ -n "$r" ] || die "no rate for $p: measure h2 with it"
  load outpost "$p" "$r" "$RUN/outpost-$p-fixed.json"
done

echo
echo "1 KiB hits at a fixed rate ($FRACTION of nginx's maximum, $C connections, $D s, open loop), latency in ms (run: $RUN)"
printf '%-5s %8s %9s %9s %9s %9s %10s %10s %9s %9s\n' proto rate nginx_rps p99 p99.9 pop_rps pop_p99 pop_p99.9 "p99/" "p99.9/"
for p in $PROTOS; do
  o=$RUN/outpost-$p-fixed.json n=$RUN/nginx-$p-fixed.json
  r=${RATE[$p]:-${RATE[h2]}}
  or=$(field "$o" 'round(r["rps"])'); o99=$(field "$o" 'r["latency_ms"]["p99"]'); o999=$(field "$o" 'r["latency_ms"]["p999"]')
  if [ "$p" = h3 ]; then
    o=$RUN/outpost-h2-fixed.json
    printf '%-5s %8s %9s %9s %9s %9s %10.2f %10.2f %9s %9s   (against the PoP'"'"'s own h2: p99 %.2f, p99.9 %.2f)\n' \
      "$p" "$r" - - - "$or" "$o99" "$o999" - - "$(field "$o" 'r["latency_ms"]["p99"]')" "$(field "$o" 'r["latency_ms"]["p999"]')"
    continue
  fi
  nr=$(field "$n" 'round(r["rps"])'); n99=$(field "$n" 'r["latency_ms"]["p99"]'); n999=$(field "$n" 'r["latency_ms"]["p999"]')
  printf '%-5s %8s %9s %9.2f %9.2f %9s %10.2f %10.2f %9.2f %9.2f\n' "$p" "$r" "$nr" "$n99" "$n999" "$or" "$o99" "$o999" \
    "$(echo "$o99 / $n99" | bc -l)" "$(echo "$o999 / $n999" | bc -l)"
done
