#!/usr/bin/env bash
# Runs every test: the pure crates natively, then the built Worker on real workerd.
# On a fresh machine it first installs what is missing (npm packages, worker-build,
# wasm-bindgen-cli, the wasm32 target or its Debian fallback).
set -euo pipefail
cd "$(dirname "$0")/.."

# The deploy check bundles a production build; every test after it runs on a test build, which
# also has the test-only routes (the `test-hooks` feature: panics, hibernation). Exported so that the builds the
# tests themselves start (dev.sh's) keep the test build instead of replacing it.
bash scripts/build-worker.sh
bash scripts/deploy-check.sh
export DSTREAM_TEST_FEATURES=test-hooks
bash scripts/build-worker.sh

echo "== native tests (protocol, the Worker's pure modules, client) =="
cargo test -p durable-stream-protocol -p durable-stream-client
cargo test -p durable-stream --lib

echo "== the Worker's JavaScript-facing modules on wasm32 under Node (wasm-bindgen-test) =="
# The same wasm toolchain as the build, and Node 22 from node_modules (the toolchain puts it on PATH).
(
  source scripts/toolchain.sh && ensure_worker_toolchain
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner cargo test --target wasm32-unknown-unknown -p durable-stream --lib
)

echo "== Worker on workerd (miniflare-tests; the console in headless Chromium) =="
(source scripts/toolchain.sh && ensure_chromium)
node_modules/.bin/node --test --test-concurrency=1 'miniflare-tests/*.test.mjs'

echo "== Durable Streams conformance suite on workerd (/ds) =="
# Fails the script on any failing test; skipped tests are listed with their reasons.
PATH="$PWD/node_modules/.bin:$PATH" vitest run --config miniflare-tests/conformance/vitest.config.mjs
