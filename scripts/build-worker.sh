#!/usr/bin/env bash
# Builds the Worker (wasm32) into build/. Used by wrangler.toml's [build] command (so by
# `wrangler dev` and `wrangler deploy`), dev.sh and test.sh. Works on a normal machine (rustup with
# the wasm32 target) and on machines that cannot download the rustup target (Debian's rustc-web
# builds std for wasm32 itself): see docs/DEVELOPING.md.
#
# Skips the build when build/ was made from the same inputs: a hash of every file the build
# reads is kept in build/.inputs.sha256 (a stamp rather than timestamps, which a git checkout
# resets).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/toolchain.sh

# The test-only features are an input too: a test build is never taken for a production one.
inputs_hash() {
  {
    find src protocol Cargo.toml Cargo.lock wrangler.toml package-lock.json .cargo/config.toml \
      scripts/build-worker.sh scripts/toolchain.sh -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    echo "features=${DSTREAM_TEST_FEATURES:-}"
  } | sha256sum | cut -d' ' -f1
}

stamp=build/.inputs.sha256
hash=$(inputs_hash)
ensure_node_modules
if [ -f build/index.js ] && [ -f build/index_bg.wasm ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
  log "build/ is up to date"
  exit 0
fi

ensure_worker_toolchain
# Test builds name test-only cargo features here (DSTREAM_TEST_FEATURES=test-hooks); the
# production build (wrangler's build command) never sets it.
step "[4/4] building the Worker (cargo, wasm-bindgen, wasm-opt; the first build takes minutes)" \
  worker-build --release ${DSTREAM_TEST_FEATURES:+--features "$DSTREAM_TEST_FEATURES"}
echo "$hash" >"$stamp"
