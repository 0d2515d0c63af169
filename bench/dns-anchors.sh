#!/usr/bin/env bash
# bench/dns-anchors.sh: `outpost dns` against gdnsd (geoip plugin) and
# PowerDNS (geoip backend) in one run of the shared anchor harness
# (bench/harness/dns-anchors.sh, the team's anchor harness kept in the repo), all answering the same geo name from the
# same synthetic MaxMind DB, each server pinned to one core, and Outpost's
# queries per server CPU-second as a ratio to each anchor's.
#
# Usage:  bench/dns-anchors.sh                      (plain and ECS, pinned: ~2 min)
#         BENCH_TESTS="plain ecs lat" BENCH_MODES="pinned unpinned" bench/dns-anchors.sh
#         BENCH_TESTS="signed signed-ecs" BENCH_TARGETS=pdns bench/dns-anchors.sh
#             (DO set: Outpost signs with a CSK from outpost dnssec keygen,
#             PowerDNS's geoip backend with one from pdnsutil secure-zone)
#
# Needs (Debian):
#   apt-get install -y --no-install-recommends dnsperf gdnsd pdns-server \
#       pdns-backend-geoip libmaxmind-db-writer-perl mmdb-bin dnsutils
# Every knob of the harness (BENCH_*) passes through; see its header.
# OUTPOST_BIN=path runs that binary instead of building this checkout's.
# Outpost listens on BENCH_OUTPOST_ADDR (default 127.0.0.1:15304) and answers
# www.edge.example A like the anchors: 192.0.2.10 for loopback (North
# America in the DB), 192.0.2.20 for ECS 2.3.4.0/24 (Europe), 192.0.2.30 for
# 3.0.0.0/8 (Asia), by the nearest PoP to the DB's location (dns.geoip).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HARNESS_DIR=${OUTPOST_HARNESS:-$ROOT/bench/harness}
HARNESS=$HARNESS_DIR/dns-anchors.sh
[ -f "$HARNESS" ] || { echo "bench/dns-anchors.sh: harness not found at $HARNESS (set OUTPOST_HARNESS)" >&2; exit 1; }

export BENCH_MODES=${BENCH_MODES:-pinned}
export BENCH_TESTS=${BENCH_TESTS:-plain ecs}
export BENCH_TARGETS=${BENCH_TARGETS:-gdnsd pdns}
export BENCH_DURATION=${BENCH_DURATION:-10}
export BENCH_RUN=${BENCH_RUN:-/tmp/bench-outpost-dns-$(date +%Y%m%d-%H%M%S)}
ADDR=${BENCH_OUTPOST_ADDR:-127.0.0.1:15304}
mkdir -p "$BENCH_RUN"

if [ -n "${OUTPOST_BIN:-}" ]; then  # a binary built elsewhere (e.g. an earlier commit, to compare)
  cp "$OUTPOST_BIN" "$BENCH_RUN/outpost"
else
  echo "building outpost -> $BENCH_RUN/outpost" >&2
  (cd "$ROOT" && go build -o "$BENCH_RUN/outpost" ./cmd/outpost)
fi

# The harness writes the DB to $BENCH_RUN/bench.mmdb ($BENCH_MMDB); write the
# same one now so that --check can read it.
MMDB=$BENCH_RUN/bench.mmdb
perl "$HARNESS_DIR/conf/dns/make-mmdb.pl" "$MMDB"

cat >"$BENCH_RUN/outpost-dns.yaml" <<YAML
# Written by bench/dns-anchors.sh: the anchors' geo name, three PoPs at the
# synthetic DB's locations; nothing listens on the PoPs' admin addresses,
# and with a 1h health interval one failed probe never takes a PoP out.
zone: edge.example
services:
  - name: www
    hostnames: [www.edge.example]
    origin:
      servers: [{url: "http://127.0.0.1:18080"}]
pops:
  - {name: na, location: {lat: 37.75, lon: -97.82}, listen: "127.0.0.1:18201", admin: "127.0.0.1:19201", address: 192.0.2.10}
  - {name: eu, location: {lat: 51.30, lon: 9.49}, listen: "127.0.0.1:18202", admin: "127.0.0.1:19202", address: 192.0.2.20}
  - {name: as, location: {lat: 35.69, lon: 139.69}, listen: "127.0.0.1:18203", admin: "127.0.0.1:19203", address: 192.0.2.30}
dns:
  listen: ["$ADDR"]
  ttl: 60s
  geoip: $MMDB
  fallback: [na]
  health: {interval: 1h}
YAML
case " $BENCH_TESTS " in
  *" signed"*)
    # Signed tests: a CSK (ECDSA P-256, as pdnsutil secure-zone makes).
    key=$("$BENCH_RUN/outpost" dnssec keygen --zone edge.example --dir "$BENCH_RUN" | awk '$1 == "CSK" { print $2 }')
    printf '  dnssec:\n    keys: [%s]\n' "$key" >>"$BENCH_RUN/outpost-dns.yaml" ;;
esac
"$BENCH_RUN/outpost" dns --config "$BENCH_RUN/outpost-dns.yaml" --check >&2

export BENCH_EXTRA_NAME=outpost
export BENCH_EXTRA_ADDR=$ADDR
export BENCH_EXTRA_CMD="$BENCH_RUN/outpost dns --config $BENCH_RUN/outpost-dns.yaml --log-level warn"
bash "$HARNESS"

# Ratios: Outpost's queries per server CPU-second over each anchor's, for the
# same mode and test.
RES=$BENCH_RUN/results.tsv
echo
echo "Outpost / anchor, queries per server CPU-second (same run: $RES)"
awk -F'\t' '
  NR == 1 { next }
  { key = $1 "\t" $3; v[$2, key] = $11; q[$2, key] = $4; keys[key] = 1 }
  END {
    printf "%-9s %-6s %10s %10s %10s %9s %9s\n", "mode", "test", "outpost", "gdnsd", "pdns", "/gdnsd", "/pdns"
    for (k in keys) {
      split(k, p, "\t")
      o = v["outpost", k]; g = v["gdnsd", k]; d = v["pdns", k]
      if (o == "" || o == "-") continue
      rg = (g + 0 > 0) ? sprintf("%.2f", o / g) : "-"
      rd = (d + 0 > 0) ? sprintf("%.2f", o / d) : "-"
      printf "%-9s %-6s %10s %10s %10s %9s %9s\n", p[1], p[2], o, (g == "" ? "-" : g), (d == "" ? "-" : d), rg, rd
    }
  }' "$RES" | sort -k1,1 -k2,2
