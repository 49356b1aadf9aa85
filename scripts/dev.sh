#!/usr/bin/env bash
# Runs the server locally on http://127.0.0.1:8787 (wrangler dev on workerd), setting up what
# is missing first. Extra arguments go to `wrangler dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/toolchain.sh
ensure_node_modules
if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  log "created .dev.vars from .dev.vars.example: set your own API_KEY there"
fi
export WRANGLER_SEND_METRICS=false
# wrangler's [build] command (scripts/build-worker.sh) installs the Rust side and builds.
exec node_modules/.bin/node node_modules/wrangler/bin/wrangler.js dev --ip 127.0.0.1 --port 8787 "$@"
