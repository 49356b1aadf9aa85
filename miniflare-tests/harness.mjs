// The shared set-up of a WebSocket test file: one server, started before the file's tests and
// stopped after them, and every connection opened through `open` closed at the end.

import { before, after } from "node:test";
import { startServer } from "./server.mjs";
import { connect } from "./ws-client.mjs";

/**
 * Registers the file's before/after hooks. `start` makes the server (default: `startServer()`).
 * Returns { server, clients, open(subject, label | connectOptions) }; a test that restarts
 * workerd assigns the new server to `server`, and later `open`s go to it.
 */
export function serverPerFile(start = () => startServer()) {
  const harness = {
    server: null,
    clients: [],
    async open(subject, options = {}) {
      const c = await connect(harness.server, subject, typeof options === "string" ? { label: options } : options);
      harness.clients.push(c);
      return c;
    },
  };
  before(async () => {
    harness.server = await start();
  });
  after(async () => {
    for (const c of harness.clients) c.close();
    await harness.server?.stop();
  });
  return harness;
}
