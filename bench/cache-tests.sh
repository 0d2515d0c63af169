#!/usr/bin/env bash
# bench/cache-tests.sh: the HTTP caching test suite behind cache-tests.fyi
# (https://github.com/http-tests/cache-tests) against a PoP with default
# cache settings, counted as cache-tests.fyi counts (see README "Conformance").
# Not run by CI or `go test`: the suite is fetched code that this repository
# does not carry.
#
# Usage:  CACHE_TESTS_DIR=/path/to/cache-tests bench/cache-tests.sh
#
# Get the suite once (Node.js 20+ and npm):
#   git clone https://github.com/http-tests/cache-tests /tmp/cache-tests
#   git -C /tmp/cache-tests checkout b55b8bd      # the commit of the README's count
#   (cd /tmp/cache-tests && npm install --omit=dev)   # undici, for the interim tests
# Without it (or without node and npm) the script says so and exits 0.
#
# It builds the PoP, starts the suite's origin server on CACHE_TESTS_ORIGIN_PORT
# (18000) and a PoP on CACHE_TESTS_POP (127.0.0.1:18081; admin on
# CACHE_TESTS_ADMIN, 127.0.0.1:19081) serving Host 127.0.0.1, runs the suite's
# CLI against the PoP (about a minute), and prints the count and every test that
# is not a pass. Results (results.json, summary.txt, logs) go to CACHE_TESTS_RUN.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SUITE=${CACHE_TESTS_DIR:-}
skip() { echo "bench/cache-tests.sh: skipped: $*" >&2; exit 0; }
[ -n "$SUITE" ] || skip "set CACHE_TESTS_DIR to a checkout of https://github.com/http-tests/cache-tests (see the header)"
[ -f "$SUITE/tests/index.mjs" ] && [ -f "$SUITE/test-engine/cli.mjs" ] || skip "$SUITE is not a cache-tests checkout"
command -v node >/dev/null && command -v npm >/dev/null || skip "node and npm are needed"
[ -d "$SUITE/node_modules/undici" ] || skip "run 'npm install --omit=dev' in $SUITE first"
SUITE=$(cd "$SUITE" && pwd)

ORIGIN_PORT=${CACHE_TESTS_ORIGIN_PORT:-18000}
POP=${CACHE_TESTS_POP:-127.0.0.1:18081}
ADMIN=${CACHE_TESTS_ADMIN:-127.0.0.1:19081}
RUN=${CACHE_TESTS_RUN:-/tmp/cache-tests-outpost-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RUN"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_port() { # host:port
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench/cache-tests.sh: nothing listens on $1" >&2; exit 1
}

for a in "127.0.0.1:$ORIGIN_PORT" "$POP" "$ADMIN"; do
	if (exec 3<>"/dev/tcp/${a%:*}/${a##*:}") 2>/dev/null; then
		echo "bench/cache-tests.sh: $a is already taken (set CACHE_TESTS_ORIGIN_PORT, CACHE_TESTS_POP, CACHE_TESTS_ADMIN)" >&2; exit 1
	fi
done

echo "building outpost -> $RUN/outpost" >&2
(cd "$ROOT" && go build -o "$RUN/outpost" ./cmd/outpost)
cat >"$RUN/cdn.yaml" <<YAML
# Written by bench/cache-tests.sh: default cache settings, no purge.
services:
  - name: cachetests
    hostnames: [127.0.0.1]
    origin:
      servers: [{url: "http://127.0.0.1:$ORIGIN_PORT"}]
pops:
  - name: conformance
    location: {lat: 0, lon: 0}
    listen: $POP
    admin: $ADMIN
    cache_size: 256MiB
    drain: 0s
YAML
"$RUN/outpost" pop --config "$RUN/cdn.yaml" --check >&2

# The suite's server reads its settings as npm would pass them.
(cd "$SUITE" && exec env npm_config_protocol=http npm_config_port="$ORIGIN_PORT" \
	npm_config_pidfile="$RUN/server.pid" node test-engine/server/server.mjs) >"$RUN/server.log" 2>&1 &
pids+=($!)
"$RUN/outpost" pop --config "$RUN/cdn.yaml" >"$RUN/pop.log" 2>&1 &
pids+=($!)
wait_port "127.0.0.1:$ORIGIN_PORT"
wait_port "$POP"

commit=$(git -C "$SUITE" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "suite $SUITE (commit $commit); PoP $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo '?')" >&2
echo "+ (cd $SUITE && npm run --silent cli --base=http://$POP)" >&2
(cd "$SUITE" && npm run --silent cli --base="http://$POP") >"$RUN/results.json" 2>"$RUN/cli.log"

# Count as cache-tests.fyi does: every test the CLI runs for a proxy (all
# but browser_only), each judged by the suite's own determineTestResult
# with dependencies honoured; pass and "yes" are passes.
node --input-type=module - "$SUITE" "$RUN/results.json" <<'JS' | tee "$RUN/summary.txt"
import fs from 'fs'
const [dir, file] = process.argv.slice(2)
const tests = (await import(dir + '/tests/index.mjs')).default
const { determineTestResult, resultTypes } = await import(dir + '/test-engine/lib/results.mjs')
const results = JSON.parse(fs.readFileSync(file, 'utf8'))
const names = new Map(Object.entries(resultTypes).map(([k, v]) => [v, k]))
const counts = {}; const required = {}; const rest = {}
let total = 0
for (const suite of tests) {
  for (const t of suite.tests) {
    if (t.browser_only) continue
    total++
    const r = names.get(determineTestResult(tests, t.id, results))
    counts[r] = (counts[r] || 0) + 1
    if ((t.kind || 'required') === 'required') required[r] = (required[r] || 0) + 1
    if (r !== 'pass' && r !== 'yes') {
      const why = Array.isArray(results[t.id]) ? results[t.id].slice(0, 2).join(': ') : `dependency ${t.depends_on}`
      ;(rest[r] = rest[r] || []).push(`  ${t.id} (${t.kind || 'required'}): ${why}`)
    }
  }
}
const passes = (counts.pass || 0) + (counts.yes || 0)
const reqTotal = Object.values(required).reduce((a, b) => a + b, 0)
console.log(`passes ${passes} of ${total}: ${counts.pass || 0} pass + ${counts.yes || 0} yes; required ${required.pass || 0} of ${reqTotal}`)
console.log('results: ' + JSON.stringify(counts))
for (const [r, list] of Object.entries(rest)) console.log(`${r} (${list.length}):\n${list.join('\n')}`)
JS
echo "results in $RUN" >&2
