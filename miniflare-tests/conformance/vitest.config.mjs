// Runs the official Durable Streams conformance suite (@durable-streams/server-conformance-tests)
// against the built Worker: `node_modules/.bin/vitest run --config miniflare-tests/conformance/vitest.config.mjs`.
// DS_TARGET=reference runs it against the Node reference server instead, for comparison.
import { defineConfig } from "vitest/config";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: here,
  test: {
    include: ["conformance.test.mjs"],
    // One file, one worker: the tests share one server; within the file tests run in order.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 120_000,
    reporters: ["default", "./skip-reporter.mjs"],
  },
});
