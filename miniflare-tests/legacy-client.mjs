// Drives the ORIGINAL durable-stream client (voxoco/durable-stream-client, unmodified, loaded from
// the shared legacy directory and never copied into this repository) against the built Worker.
// Its dependencies, axios 0.27.2 and websocket 1.0.34, are this project's devDependencies: the
// client's `require`s resolve through NODE_PATH pointed at our node_modules.

import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { ROOT, TEST_KEY } from "./server.mjs";
import { until } from "./ws-client.mjs";

const CLIENT_MAIN = join("durable-stream-client", "lib", "main.js");

/** The legacy directory: $LEGACY_DIR, else `../shared/legacy` next to the checkout, else
 *  /work/shared/legacy. */
export function legacyDir() {
  const candidates = [process.env.LEGACY_DIR, resolve(ROOT, "..", "shared", "legacy"), "/work/shared/legacy"].filter(Boolean);
  const found = candidates.find((dir) => existsSync(join(dir, CLIENT_MAIN)));
  if (!found) {
    throw new Error(
      `the original durable-stream client was not found (looked for ${CLIENT_MAIN} in ${candidates.join(", ")}); ` +
        "set LEGACY_DIR to the directory holding durable-stream-client/ and SPEC.md",
    );
  }
  return found;
}

const require = createRequire(join(ROOT, "package.json"));
const Module = require("node:module");
process.env.NODE_PATH = [join(ROOT, "node_modules"), process.env.NODE_PATH].filter(Boolean).join(":");
Module._initPaths();
// What the client's README tells Node apps to do.
globalThis.WebSocket = require("websocket").w3cwebsocket;
const DurableStreamClient = require(join(legacyDir(), CLIENT_MAIN)).default;

const opened = [];

/** A connected original client on `subject` (its `init()` done: open, plus its 1 s pause). */
export async function legacyClient(server, subject, { apiKey = TEST_KEY, host = new URL(server.url).host } = {}) {
  const client = new DurableStreamClient({ host, secure: false, apiKey, subject });
  opened.push(client);
  await client.init();
  return client;
}

/** Stops a client for good: the original reconnects forever after any close. */
export function shutdown(client) {
  client.init = async () => {};
  client.ws.close();
}

export function shutdownAll() {
  opened.splice(0).forEach(shutdown);
}

/** Subscribes through the client's `subscribe` and collects what its handler gets; `ack`
 *  decides per message whether the app acks it (default: always). */
export function collect(client, start, { ack = () => true } = {}) {
  const got = [];
  client.subscribe(start, (msg, ackFn) => {
    got.push(msg);
    if (ack(msg)) ackFn();
  });
  return {
    got,
    data: () => got.map((m) => m.data),
    async waitFor(n, what = `${n} deliveries`, timeout = 20_000) {
      await until(() => got.length >= n, timeout, what);
      return got;
    },
  };
}
