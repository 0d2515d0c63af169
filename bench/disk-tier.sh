#!/usr/bin/env bash
# bench/disk-tier.sh: the disk tier's measurements of issue 18, against
# real processes over loopback: `outpost origin` (the synthetic origin),
# `outpost pop` (with and without pops[].disk) and `outpost bench`.
# Neither test is timed against an anchor, so a busy machine changes only
# how long they take (and the restart test's time to first disk hit).
#
#   bhr      Byte hit ratio of a trace replayed once through a PoP:
#            memory only (cache_size = 1% of the trace's footprint) against
#            memory 1% + disk 10% (a directory under $DISK_RUN), beside the
#            hit-ratio simulator's S3-FIFO (and LRU) at 1% and 10% of the
#            same trace. The traces are the simulator's own (Zipf over a
#            catalog of lognormal sizes, median 20 KiB), made smaller so a
#            run takes minutes: DISK_OBJS objects, DISK_REQS requests.
#   restart  A PoP with a disk warmed on a Zipf workload, its warm hit
#            ratio over 10,000 requests, `kill -9`, the same PoP started
#            again on the same directory: the time from its start to the
#            first disk hit, and the hit ratio of the first 10,000
#            requests after the restart.
#
# Usage:  HITRATIO_DIR=../shared/hitratio bench/disk-tier.sh
#         DISK_TESTS=restart bench/disk-tier.sh
#         DISK_TRACES="zipf0.9" DISK_OBJS=50000 DISK_REQS=250000 HITRATIO_DIR=... bench/disk-tier.sh
#
# Knobs (environment):
#   HITRATIO_DIR     the hit-ratio simulator's module (github.com/.../hitratio,
#                    kept outside this repo): it makes the traces (-dump) and
#                    simulates S3-FIFO and LRU on them. Required by bhr unless
#                    DISK_TRACE_FILES is set.
#   DISK_TRACE_FILES your own trace files for bhr instead (outpost bench -trace
#                    format, with ?size=N in every URL); no simulator column.
#   DISK_TRACES      simulator traces (default "zipf0.9 zipf0.7")
#   DISK_OBJS, DISK_REQS   catalog and trace length (default 20000, 100000)
#   DISK_MIN_USES    the disk's min_uses (default 2, the PoP's default)
#   DISK_CONNS       connections of outpost bench (default 2)
#   DISK_ZIPF_OBJS, DISK_ZIPF_S   the restart workload (default 20000, 0.9)
#   DISK_WARM        warm-up requests before the restart (default 100000)
#   DISK_MEM, DISK_SIZE   the restart PoP's cache_size and disk size
#                    (default 16MiB, 1GiB)
#   DISK_RUN         where binaries, configs, caches and results go
#                    (default /tmp/outpost-disk-DATE; the cache dirs are
#                    removed at the end unless DISK_KEEP=1)
#   DISK_PORT        first of the three loopback ports used (default 18300)
# Needs: go, curl, jq, bc.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${DISK_RUN:-/tmp/outpost-disk-$(date +%Y%m%d-%H%M%S)}
TESTS=${DISK_TESTS:-bhr restart}
TRACES=${DISK_TRACES:-zipf0.9 zipf0.7}
OBJS=${DISK_OBJS:-20000}
REQS=${DISK_REQS:-100000}
MIN_USES=${DISK_MIN_USES:-2}
CONNS=${DISK_CONNS:-2}
ZIPF_OBJS=${DISK_ZIPF_OBJS:-20000}
ZIPF_S=${DISK_ZIPF_S:-0.9}
WARM=${DISK_WARM:-100000}
RMEM=${DISK_MEM:-16MiB}
RSIZE=${DISK_SIZE:-1GiB}
PORT=${DISK_PORT:-18300}
ORIGIN=127.0.0.1:$PORT
POP=127.0.0.1:$((PORT + 1))
ADMIN=127.0.0.1:$((PORT + 2))
for tool in curl jq go bc; do
	command -v "$tool" >/dev/null || { echo "bench/disk-tier.sh: needs $tool" >&2; exit 1; }
done
mkdir -p "$RUN"
BIN=$RUN/outpost
RESULTS=$RUN/results.txt
echo "building outpost -> $BIN" >&2
(cd "$ROOT" && go build -o "$BIN" ./cmd/outpost)

# The processes this script started, ended by their PIDs.
ORIGIN_PID= POP_PID=
cleanup() {
	for pid in $POP_PID $ORIGIN_PID; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ "${DISK_KEEP:-0}" = 1 ] || rm -rf "$RUN"/cache-*
}
trap cleanup EXIT

say() { echo "$*" | tee -a "$RESULTS"; }
now() { date +%s.%N; }

# wait_url URL: until it answers 200 (30 s at most).
wait_url() {
	for _ in $(seq 300); do
		curl -fs -o /dev/null "$1" && return 0
		sleep 0.1
	done
	echo "bench/disk-tier.sh: $1 did not answer" >&2
	return 1
}

start_origin() {
	"$BIN" origin --listen "$ORIGIN" --log-level warn 2>>"$RUN/origin.log" &
	ORIGIN_PID=$!
	wait_url "http://$ORIGIN/_origin/health"
}

# write_config FILE MEM [DISKDIR DISKSIZE]
write_config() {
	local disk=""
	if [ -n "${3:-}" ]; then
		disk="    disk: [{path: $3, size: $4, min_uses: $MIN_USES}]"
		mkdir -p "$3" # (the PoP opens the purge journal in it before creating it)
	fi
	cat >"$1" <<YAML
# Written by bench/disk-tier.sh.
services:
  - name: bench
    hostnames: [127.0.0.1, localhost]
    origin:
      servers: [{url: "http://$ORIGIN"}]
pops:
  - name: disk
    location: {lat: 0, lon: 0}
    listen: $POP
    admin: $ADMIN
    cache_size: $2
    drain: 0s
$disk
YAML
}

# start_pop CONFIG: starts the PoP; START is when, in seconds.
start_pop() {
	START=$(now)
	"$BIN" pop --config "$1" --log-level warn 2>>"$RUN/pop.log" &
	POP_PID=$!
}

stop_pop() { # SIGTERM, as an operator would
	kill "$POP_PID" 2>/dev/null || true
	wait "$POP_PID" 2>/dev/null || true
	POP_PID=
}

# drain_writes: until the disk's write queue is empty (60 s at most).
drain_writes() {
	for _ in $(seq 600); do
		[ "$(curl -fs "http://$ADMIN/stats" | jq '[.disks[]?.queued_writes] | add // 0')" = 0 ] && return 0
		sleep 0.1
	done
}

# bench ARGS...: outpost bench against the PoP, its JSON result on stdout.
bench() { "$BIN" bench -c "$CONNS" -json -log-level error "$@" "http://$POP/"; }

pct() { jq -r "$1 * 1000 | round / 10" "$2"; }

test_bhr() {
	local traces=()
	if [ -n "${DISK_TRACE_FILES:-}" ]; then
		traces=($DISK_TRACE_FILES)
	else
		[ -n "${HITRATIO_DIR:-}" ] || { echo "bench/disk-tier.sh: bhr needs HITRATIO_DIR (the simulator) or DISK_TRACE_FILES" >&2; return 1; }
		(cd "$HITRATIO_DIR" && go build -o "$RUN/hitratio" .)
		for t in $TRACES; do
			"$RUN/hitratio" -objs "$OBJS" -reqs "$REQS" -traces "$t" -dump "$RUN/trace" >>"$RUN/sim.log" 2>&1
			"$RUN/hitratio" -objs "$OBJS" -reqs "$REQS" -traces "$t" -caps 0.01,0.1 -caches s3fifo,lru \
				-out "$RUN/sim.json" >>"$RUN/sim.log" 2>&1
			traces+=("$RUN/trace.$t.txt")
		done
	fi
	say ""
	say "bhr: $OBJS objects, $REQS requests a trace; min_uses $MIN_USES; outpost bench -c $CONNS -trace"
	say "trace	footprint	setup	BHR %	OHR %	memory hits %	disk hits %	origin MiB	disk written MiB	sim S3-FIFO 1% BHR	sim S3-FIFO 10% BHR	sim LRU 10% BHR"
	for tf in "${traces[@]}"; do
		local name footprint mem disk sim1 sim10 lru10
		name=$(basename "$tf" .txt)
		name=${name#trace.}
		# The footprint: every distinct URL's size, once.
		footprint=$(awk '{ u = $NF; if (!(u in seen)) { seen[u] = 1; if (match(u, /size=[0-9]+/)) s += substr(u, RSTART + 5, RLENGTH - 5) } } END { printf "%d", s }' "$tf")
		mem=$((footprint / 100))
		disk=$((footprint / 10))
		[ "$mem" -ge $((1 << 20)) ] || mem=$((1 << 20))
		[ "$disk" -ge $((16 << 20)) ] || disk=$((16 << 20))
		sim1=- sim10=- lru10=-
		if [ -f "$RUN/sim.json" ]; then
			sim1=$(jq -rs --arg t "$name" 'map(select(.trace == $t and .cache == "s3fifo" and .cap_pct == 1)) | last | .bhr * 1000 | round / 10' "$RUN/sim.json")
			sim10=$(jq -rs --arg t "$name" 'map(select(.trace == $t and .cache == "s3fifo" and .cap_pct == 10)) | last | .bhr * 1000 | round / 10' "$RUN/sim.json")
			lru10=$(jq -rs --arg t "$name" 'map(select(.trace == $t and .cache == "lru" and .cap_pct == 10)) | last | .bhr * 1000 | round / 10' "$RUN/sim.json")
		fi
		for setup in memory memory+disk; do
			local cfg=$RUN/$name-$setup.yaml dir=$RUN/cache-$name
			rm -rf "$dir"
			if [ "$setup" = memory ]; then
				write_config "$cfg" "$mem"
			else
				write_config "$cfg" "$mem" "$dir" "$disk"
			fi
			start_pop "$cfg"
			wait_url "http://$ADMIN/healthz"
			curl -fs "http://$ORIGIN/_origin/stats?reset=1" >/dev/null || true
			bench -trace "$tf" >"$RUN/$name-$setup.json"
			curl -fs "http://$ADMIN/stats" >"$RUN/$name-$setup.stats.json"
			local origin_mib
			origin_mib=$(curl -fs "http://$ORIGIN/_origin/stats" | jq ".bytes_sent / 1048576 | round")
			say "$name	$((footprint >> 20))MiB	$setup (mem $((mem >> 20))MiB$([ "$setup" = memory ] || echo ", disk $((disk >> 20))MiB"))	$(pct .byte_hit_ratio "$RUN/$name-$setup.json")	$(pct .hit_ratio "$RUN/$name-$setup.json")	$(pct '(.memory_hit_ratio // .hit_ratio)' "$RUN/$name-$setup.stats.json")	$(pct '(.disk_hit_ratio // 0)' "$RUN/$name-$setup.stats.json")	$origin_mib	$(jq '[.disks[]?.bytes_written] | add // 0 | . / 1048576 | round' "$RUN/$name-$setup.stats.json")	$sim1	$sim10	$lru10"
			stop_pop
			rm -rf "$dir"
		done
	done
}

test_restart() {
	local cfg=$RUN/restart.yaml dir=$RUN/cache-restart probe="/obj/restart-probe?size=100k"
	rm -rf "$dir"
	write_config "$cfg" "$RMEM" "$dir" "$RSIZE"
	start_pop "$cfg"
	wait_url "http://$ADMIN/healthz"
	local zipf=(-zipf "$ZIPF_OBJS" -zipf-s "$ZIPF_S")
	bench "${zipf[@]}" -n "$WARM" -seed 1 >"$RUN/restart-warmup.json"
	for _ in 1 2 3; do curl -fs -o /dev/null "http://$POP$probe"; done
	drain_writes
	bench "${zipf[@]}" -n 10000 -seed 2 >"$RUN/restart-warm.json"
	curl -fs "http://$ADMIN/stats" >"$RUN/restart-before.stats.json"
	kill -9 "$POP_PID"
	wait "$POP_PID" 2>/dev/null || true
	POP_PID=

	start_pop "$cfg"
	local ready="" first="" t cs
	while :; do
		cs=$(curl -s -D - -o /dev/null "http://$POP$probe" 2>/dev/null | tr -d '\r' | grep -i '^cache-status:' || true)
		t=$(now)
		case "$cs" in
		*detail=disk*) first=$t; break ;;
		*hit* | *fwd=*) echo "bench/disk-tier.sh: the probe was not a disk hit after the restart: $cs" >&2; break ;;
		esac
		if [ "$(echo "$t - $START > 30" | bc)" = 1 ]; then echo "bench/disk-tier.sh: no answer 30 s after the restart" >&2; break; fi
		sleep 0.005
	done
	curl -fs "http://$ADMIN/stats" >"$RUN/restart-early.stats.json"
	bench "${zipf[@]}" -n 10000 -seed 3 >"$RUN/restart-after.json"
	curl -fs "http://$ADMIN/stats" >"$RUN/restart-after.stats.json"
	drain_writes
	stop_pop
	local files
	files=$(jq '[.disks[].items] | add' "$RUN/restart-before.stats.json")
	say ""
	say "restart: zipf $ZIPF_S over $ZIPF_OBJS objects (the synthetic origin's sizes), cache_size $RMEM, disk $RSIZE (min_uses $MIN_USES), $files files on disk at the kill -9"
	say "warm (10,000 requests after $WARM):           hit ratio $(pct .hit_ratio "$RUN/restart-warm.json")%, byte hit ratio $(pct .byte_hit_ratio "$RUN/restart-warm.json")%"
	say "after kill -9 and restart (first 10,000):     hit ratio $(pct .hit_ratio "$RUN/restart-after.json")%, byte hit ratio $(pct .byte_hit_ratio "$RUN/restart-after.json")% (memory $(pct .memory_hit_ratio "$RUN/restart-after.stats.json")%, disk $(pct .disk_hit_ratio "$RUN/restart-after.stats.json")%)"
	say "difference: $(jq -rn --slurpfile w "$RUN/restart-warm.json" --slurpfile a "$RUN/restart-after.json" '($a[0].hit_ratio - $w[0].hit_ratio) * 1000 | round / 10') points"
	if [ -n "$first" ]; then
		say "time from start to first disk hit: $(echo "($first - $START) * 1000 / 1" | bc) ms (loader then: $(jq -r '[.disks[].load | "\(.loaded) files loaded, done: \(.done)"] | join("; ")' "$RUN/restart-early.stats.json"))"
	fi
	say "loader: $(jq -r '[.disks[].load | "\(.loaded) files in \(.seconds * 1000 | round) ms"] | join("; ")' "$RUN/restart-after.stats.json")"
	rm -rf "$dir"
}

start_origin
for t in $TESTS; do
	case $t in
	bhr) test_bhr ;;
	restart) test_restart ;;
	*) echo "bench/disk-tier.sh: unknown test $t (bhr, restart)" >&2; exit 2 ;;
	esac
done
echo "results: $RESULTS" >&2
