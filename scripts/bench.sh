#!/usr/bin/env bash
# Benchmarks the Worker on workerd (`wrangler dev`) against the platform floor, in one run.
#
#   ./scripts/bench.sh [dstream bench options]      e.g. --fanout-window 5 --time-limit 30
#
# Installs and builds what is missing (like test.sh), starts our Worker (miniflare-tests/serve.mjs)
# and the floor (a minimal JavaScript Durable Object, ../shared/bench-floor or $FLOOR_DIR) on
# free ports, runs `dstream bench --floor` against both and prints the machine, the versions and
# the Markdown table (our rate, the floor's, and the ratio). Without the floor's directory only
# our Worker is measured. FLOOR_VARIANT picks the floor's storage (sql, kv, none; default sql).
# Single publishes and fan-out take turns with the floor for BENCH_ROUNDS rounds (default 5).
# Then where the isolate's time goes per publish, ours against the floor's, single publishes and
# fan-out once more each under V8's CPU profiler (bench/isolate-profile.mjs); ISOLATE_BENCH=0
# skips it.
# Then the cold start of new subjects against the floor on the same two servers, and the wasm
# bundle's compile time (bench/cold-start.mjs, COLD_BENCH_SUBJECTS subjects each, default 40);
# COLD_BENCH=0 skips it.
# Then the Durable Streams append benchmark (bench/ds-appends.mjs: our /ds mount against the
# @durable-streams/server reference and a JS HTTP floor, driven by wrk); DS_BENCH=0 skips it.
# Then single publishes with an access token against the API key, taking turns in the same run,
# with workerd's CPU per publish (bench/token-cost.sh); TOKEN_BENCH=0 skips it.
# Then single publishes with the subject directory reporting (DIRECTORY_REPORT_MS=5000, the
# default) against a Worker that does not report (DIRECTORY_REPORT_MS=0), taking turns in the
# same run, rate and workerd CPU per publish (bench/directory-cost.mjs, DIRECTORY_BENCH_ROUNDS
# rounds, default 6); DIRECTORY_BENCH=0 skips it.
# Then publishes through the original protocol's route (/stream/{subject}, the original client)
# against native WebSocket publishes, taking turns in the same run (bench/legacy.mjs,
# LEGACY_BENCH_ROUNDS rounds, default 5); LEGACY_BENCH=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

FLOOR_DIR=${FLOOR_DIR:-../shared/bench-floor}
FLOOR_VARIANT=${FLOOR_VARIANT:-sql}

# The production build (no test-only features), through the build script so that its stamp
# says which build build/ holds: a later test build must not take this one for its own.
DSTREAM_TEST_FEATURES= bash scripts/build-worker.sh
cargo build --release -p durable-stream-client --bin dstream
if [ "${DS_BENCH:-1}" != 0 ] && ! command -v wrk >/dev/null; then
  echo "== installing wrk (the HTTP load generator of bench/ds-appends.mjs)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >&2 || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >&2; }
fi

NODE=node_modules/.bin/node
WRANGLER=node_modules/wrangler/bin/wrangler.js
# wrangler dev records a trace of every event into a local store (its "local observability",
# on by default), for every server started here: a cost production does not have, ~20 % of
# workerd's CPU per publish, which grows as the store does over a run (bench/RESULTS.md,
# "Local observability"). Off for every server measured here; X_LOCAL_OBSERVABILITY=true keeps it.
export X_LOCAL_OBSERVABILITY=${X_LOCAL_OBSERVABILITY:-false}
work=$(mktemp -d)
floor_pid=
cleanup() {
  # serve.mjs stops when its stdin (the coprocess pipe) closes; the floor runs in its own group.
  if [ -n "${OURS_PID:-}" ]; then kill "$OURS_PID" 2>/dev/null || true; fi
  if [ -n "$floor_pid" ]; then kill -- "-$floor_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The tests' port picker: below the ephemeral range, so no outgoing connection takes the port
# before wrangler binds it.
free_port() {
  "$NODE" --input-type=module -e 'import { freePort } from "./miniflare-tests/server.mjs"; console.log(await freePort());'
}

echo "== starting our Worker" >&2
coproc OURS { exec "$NODE" miniflare-tests/serve.mjs --persist "$work/ours"; }
ours_url=
while read -r -t 120 line <&"${OURS[0]}"; do
  case $line in READY\ *) ours_url=${line#READY }; break ;; esac
done
[ -n "$ours_url" ] || { echo "bench: our Worker did not start" >&2; exit 1; }

floor_args=()
floor_url=
if [ -f "$FLOOR_DIR/wrangler.toml" ]; then
  echo "== starting the platform floor ($FLOOR_DIR, variant $FLOOR_VARIANT)" >&2
  # A private copy: wrangler writes its build output and state next to the config.
  mkdir -p "$work/floor"
  cp -r "$FLOOR_DIR/wrangler.toml" "$FLOOR_DIR/src" "$work/floor/"
  port=$(free_port)
  inspector=$(free_port)
  (cd "$work/floor" && WRANGLER_SEND_METRICS=false CI=true NO_COLOR=1 exec setsid "$OLDPWD/$NODE" "$OLDPWD/$WRANGLER" dev \
    --ip 127.0.0.1 --port "$port" --inspector-port "$inspector" --persist-to "$work/floor/state" \
    --log-level warn --show-interactive-dev-session=false) >"$work/floor.log" 2>&1 &
  floor_pid=$!
  for _ in $(seq 1 240); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" || true)
    [ "$code" != 000 ] && break
    sleep 0.5
  done
  [ "$code" != 000 ] || { cat "$work/floor.log" >&2; echo "bench: the floor did not start" >&2; exit 1; }
  # Single publishes and fan-out take turns with the floor, BENCH_ROUNDS rounds (default 5);
  # each row reports the round with the median ratio.
  floor_url="http://127.0.0.1:$port/$FLOOR_VARIANT"
  floor_args=(--floor "$floor_url" --rounds "${BENCH_ROUNDS:-5}")
else
  echo "bench: no floor at $FLOOR_DIR (set FLOOR_DIR); measuring our Worker only" >&2
fi

echo "## Machine"
echo "- $(nproc) cores, $(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo) GiB, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
echo "- commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src protocol client || echo ' (with local changes)'), $("$NODE" "$WRANGLER" --version 2>/dev/null | tail -1 | sed 's/^/wrangler /'), $(node_modules/.bin/workerd --version)"
echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
dstream() { cargo run --release -q -p durable-stream-client --bin dstream -- --url "$ours_url" "$@"; }
dstream --api-key test-key bench "${floor_args[@]}" "$@"
echo
echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "${ISOLATE_BENCH:-1}" != 0 ] && [ -n "$floor_url" ]; then
  echo
  echo "## What the isolate does per publish (bench/isolate-profile.mjs)"
  echo
  "$NODE" bench/isolate-profile.mjs --ours "$ours_url" --floor "$floor_url" --api-key test-key --dstream target/release/dstream
fi

if [ "${COLD_BENCH:-1}" != 0 ]; then
  echo
  echo "## Cold start of a new subject (bench/cold-start.mjs)"
  echo
  "$NODE" bench/cold-start.mjs --ours "$ours_url" --api-key test-key ${floor_url:+--floor "$floor_url"} --subjects "${COLD_BENCH_SUBJECTS:-40}"
fi

if [ "${DS_BENCH:-1}" != 0 ]; then
  echo
  echo "## Durable Streams appends (bench/ds-appends.mjs)"
  "$NODE" bench/ds-appends.mjs --seconds "${DS_BENCH_SECONDS:-10}" --rounds "${DS_BENCH_ROUNDS:-2}"
fi

if [ "${TOKEN_BENCH:-1}" != 0 ]; then
  echo
  echo "## Access tokens against the API key (bench/token-cost.sh)"
  bash bench/token-cost.sh "${TOKEN_BENCH_ROUNDS:-6}"
fi

if [ "${DIRECTORY_BENCH:-1}" != 0 ]; then
  echo
  echo "## Single publishes with the directory reporting against without (bench/directory-cost.mjs)"
  echo
  "$NODE" bench/directory-cost.mjs --rounds "${DIRECTORY_BENCH_ROUNDS:-6}" --dstream target/release/dstream
fi

if [ "${LEGACY_BENCH:-1}" != 0 ]; then
  echo
  echo "## Legacy route against native single publishes (bench/legacy.mjs)"
  echo
  "$NODE" bench/legacy.mjs --rounds "${LEGACY_BENCH_ROUNDS:-5}"
fi
