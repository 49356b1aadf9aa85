#!/usr/bin/env bash
# Runs the server locally (`wrangler dev` on workerd), setting up what is missing first.
# Every argument goes to `wrangler dev`; --ip and --port default to 127.0.0.1 and 8787 only when
# not given, e.g.
#   ./scripts/dev.sh --port 8950 --persist-to /tmp/ds-state --var MAX_DELIVER:3
# Local data (Durable Objects, R2 files) lives in .wrangler/state, or in the --persist-to directory.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/toolchain.sh

ip=127.0.0.1 port=8787 persist=.wrangler/state scheme=http
ip_given= port_given=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  next=${args[i + 1]:-}
  case ${args[i]} in
    --ip) ip=$next ip_given=1 ;;
    --ip=*) ip=${args[i]#*=} ip_given=1 ;;
    --port) port=$next port_given=1 ;;
    --port=*) port=${args[i]#*=} port_given=1 ;;
    --persist-to) persist=$next ;;
    --persist-to=*) persist=${args[i]#*=} ;;
    --local-protocol) scheme=$next ;;
    --local-protocol=*) scheme=${args[i]#*=} ;;
  esac
done
defaults=()
[ -n "$ip_given" ] || defaults+=(--ip "$ip")
[ -n "$port_given" ] || defaults+=(--port "$port")

case $ip in
  0.0.0.0 | '*') host=127.0.0.1 ;;
  ::) host='[::1]' ;;
  *:*) host="[$ip]" ;;
  *) host=$ip ;;
esac
url="$scheme://$host:$port"

# Something already answering there (often an earlier dev.sh) would answer the readiness check
# below, and this script would announce a server that never started: wrangler fails on the
# busy port only later.
if [ "$(curl -sk -o /dev/null --max-time 2 -w '%{num_connects}' "$url/" 2>/dev/null || true)" = 1 ]; then
  echo "dev.sh: $host:$port is already in use (another ./scripts/dev.sh or wrangler dev?)." >&2
  [[ $port =~ ^[0-9]+$ ]] && other=$((port + 1)) || other=8788
  echo "        Stop that one, or pick another port: ./scripts/dev.sh --port $other" >&2
  exit 1
fi

ensure_node_modules
created_dev_vars=
if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  created_dev_vars=" (just created from .dev.vars.example)"
fi
# Built here rather than only by wrangler's [build] command (which then finds build/ up to date),
# so that progress and failures read the same as in test.sh.
bash scripts/build-worker.sh


print_next_steps() {
  local key
  key=$(sed -n 's/^API_KEY=//p' .dev.vars | tail -n 1)
  cat <<EOF

durable-stream is serving $url
  local data:  $persist (delete it to start empty)
  API key:     $key, from .dev.vars$created_dev_vars; change it there and restart
               (in production it is a secret: wrangler secret put API_KEY)
  console:     $url/console/ (sign in with the API key)
  build log:   $BUILD_LOG

Try this next:
  curl -s -X POST $url/v1/stream/orders -H 'Authorization: Bearer $key' -d '{"order":17}'
  curl -s "$url/v1/stream/orders/messages?from=1" -H 'Authorization: Bearer $key'
  dstream --url $url --api-key '$key' sub orders --from first --count 1
EOF
  command -v dstream >/dev/null || echo "  (dstream is the CLI in client/: cargo install --path client)"
  echo
}

export WRANGLER_SEND_METRICS=false
# The Worker does not read `request.cf`; not fetching it keeps an offline start free of warnings
# and stack traces.
export CLOUDFLARE_CF_FETCH_ENABLED=${CLOUDFLARE_CF_FETCH_ENABLED:-false}
# In the background so that the next steps can be printed once the server answers; stdin stays
# the terminal's for wrangler's hotkeys.
node_modules/.bin/node node_modules/wrangler/bin/wrangler.js dev "${defaults[@]}" "$@" <&0 &
wrangler_pid=$!
# Ctrl-C reaches wrangler directly (same process group); a TERM sent to this script is passed on.
trap ':' INT
trap 'kill -TERM "$wrangler_pid" 2>/dev/null || true' TERM

# Two minutes is plenty: the build is done, wrangler only starts workerd.
for _ in $(seq 1 240); do
  kill -0 "$wrangler_pid" 2>/dev/null || break
  if curl -fsk -o /dev/null --max-time 2 "$url/health"; then
    print_next_steps
    break
  fi
  sleep 0.5
done

status=0
while true; do
  wait "$wrangler_pid" && status=0 || status=$?
  kill -0 "$wrangler_pid" 2>/dev/null || break
done
exit "$status"
