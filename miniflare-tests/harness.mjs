// The shared set-up of a WebSocket test file: one server, started before the file's tests and
// stopped after them, and every connection opened through `open` closed at the end.

import { before, after } from "node:test";
import { startServer } from "./server.mjs";
import { connect } from "./ws-client.mjs";

/**
 * Registers the file's before/after hooks. `start` makes the server (default: `startServer()`).
 * Returns { server, clients, open(subject, label | connectOptions), evict(subject) }; a test that restarts
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
    /** Makes the subject's object forget its memory, as hibernation does (test builds only). */
    async evict(subject) {
      const res = await fetch(`${harness.server.url}/test/evict/${subject}`);
      if (res.status !== 200) throw new Error(`/test/evict answered ${res.status}: build with DSTREAM_TEST_FEATURES=test-hooks`);
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
