#!/usr/bin/env bash
# Runs every test: the pure crates natively, then the built Worker on real workerd.
# On a fresh machine it first installs what is missing (npm packages, worker-build,
# wasm-bindgen-cli, the wasm32 target or its Debian fallback).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build-worker.sh
bash scripts/deploy-check.sh

echo "== native tests (protocol, the Worker's pure modules, client) =="
cargo test -p durable-stream-protocol -p durable-stream-client
cargo test -p durable-stream --lib

echo "== Worker on workerd (miniflare-tests) =="
node_modules/.bin/node --test --test-concurrency=1 'miniflare-tests/*.test.mjs'

echo "== Durable Streams conformance suite on workerd (/ds) =="
# Fails the script on any failing test; skipped tests are listed with their reasons.
PATH="$PWD/node_modules/.bin:$PATH" vitest run --config miniflare-tests/conformance/vitest.config.mjs
