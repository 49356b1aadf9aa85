#!/usr/bin/env bash
# Builds the Worker (wasm32) into build/. Used by wrangler.toml's [build] command and the tests.
# Works on a normal machine (rustup with the wasm32 target) and on machines that cannot download
# the rustup target (Debian's rustc-web builds std for wasm32 itself: see docs/DEVELOPING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/toolchain.sh
ensure_worker_toolchain
# Test builds name test-only cargo features here (DSTREAM_TEST_FEATURES=test-panic); the
# production build (wrangler's build command) never sets it.
worker-build --release ${DSTREAM_TEST_FEATURES:+--features "$DSTREAM_TEST_FEATURES"}
