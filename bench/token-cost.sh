#!/usr/bin/env bash
# Access tokens against the API key (issue 11): single publishes (10,000, 100 in flight) with a
# token and with the API key, taking turns (AB, BA, …) against one Worker in the same run, with
# the rate and the CPU time of the workerd processes under our server per publish (utime+stime
# from /proc), which other load on the machine disturbs much less than the rate.
#   bash bench/token-cost.sh [ROUNDS]      (default 6; run by scripts/bench.sh, TOKEN_BENCH=0 skips)
# Needs the built Worker and `target/release/dstream` (scripts/bench.sh builds both).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-6}
coproc OURS { exec node_modules/.bin/node miniflare-tests/serve.mjs --var TOKEN_SECRET=bench-token-secret; }
trap 'kill "$OURS_PID" 2>/dev/null || true' EXIT
url=
while read -r -t 120 line <&"${OURS[0]}"; do case $line in READY\ *) url=${line#READY }; break ;; esac; done
[ -n "$url" ] || { echo "token-cost: our Worker did not start" >&2; exit 1; }
dstream=target/release/dstream
descendants() { local p; for p in $(pgrep -P "$1"); do echo "$p"; descendants "$p"; done; }
workerd_ticks() {
  local total=0 p
  for p in $(descendants "$OURS_PID"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = workerd ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)
token=$($dstream --url "$url" --api-key test-key token create --sub bench --subject '>' \
  --allow pub --allow sub --allow state --allow admin --ttl 1h 2>/dev/null)
echo "| round | credential | rate (msg/s) | workerd CPU per publish (µs) | load average |"
echo "|---:|---|---:|---:|---:|"
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) = 1 ]; then order="key token"; else order="token key"; fi
  for credential in $order; do
    if [ "$credential" = key ]; then args=(--api-key test-key); else args=(--token "$token"); fi
    before=$(workerd_ticks)
    row=$($dstream --url "$url" "${args[@]}" bench --phases single --time-limit 30 2>/dev/null | grep -E '^\| publish')
    after=$(workerd_ticks)
    count=$(echo "$row" | awk -F'|' '{gsub(/ /, "", $3); print $3}')
    rate=$(echo "$row" | awk -F'|' '{gsub(/ msg\/s| /, "", $5); print $5}')
    echo "| $round | $credential | $rate | $(( (after - before) * 1000000 / hz / count )) | $(cut -d' ' -f1 /proc/loadavg) |"
  done
done
