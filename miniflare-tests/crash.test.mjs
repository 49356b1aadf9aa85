// workerd killed with SIGKILL while publishes are in flight, over WebSocket, the native HTTP API
// and the Durable Streams mount: after a restart on the same storage, every message that was
// acknowledged is there under the sequence it was acknowledged with, and the sequence continues
// with no gap.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, tempDir, TEST_KEY } from "./server.mjs";
import { connect, until } from "./ws-client.mjs";

const AUTH = { authorization: `Bearer ${TEST_KEY}` };
const SUBJECT = "crash.orders";

test("every acknowledged publish survives a SIGKILL of workerd", { timeout: 180_000 }, async () => {
  const persist = tempDir("crash-");
  let server = await startServer({ persist });
  /** seq -> the exact text published, for everything acknowledged. */
  const acked = new Map();
  let stopping = false;
  try {
    const created = await fetch(`${server.url}/ds/v1/stream/${SUBJECT}`, { method: "PUT", headers: { ...AUTH, "content-type": "application/json" } });
    assert.equal(created.status, 201);
    const ws = await connect(server, SUBJECT);
    // A pipelined WebSocket publisher: 32 frames in flight at all times.
    let next = 0;
    const sent = new Map();
    ws.onFrame = (frame) => {
      if (frame.op === "ok" && sent.has(frame.id)) {
        acked.set(frame.seq, sent.get(frame.id));
        if (!stopping) publish();
      }
    };
    const publish = () => {
      const id = `w${next++}`;
      const data = JSON.stringify({ via: "ws", n: next, pad: "x".repeat(next % 300) });
      sent.set(id, data);
      ws.send(`{"op":"pub","id":"${id}","data":${data}}`);
    };
    for (let i = 0; i < 32; i++) publish();
    // Concurrent HTTP publishers: native batches and Durable Streams appends.
    const httpWriter = async (kind) => {
      for (let i = 0; !stopping; i++) {
        const data = JSON.stringify({ via: kind, i });
        const res = await (kind === "native"
          ? fetch(`${server.url}/v1/stream/${SUBJECT}`, { method: "POST", headers: AUTH, body: data })
          : fetch(`${server.url}/ds/v1/stream/${SUBJECT}`, { method: "POST", headers: { ...AUTH, "content-type": "application/json" }, body: data })
        ).catch(() => null);
        if (res?.status === 200 && kind === "native") acked.set((await res.json()).seq, data);
        if (res?.status === 204 && kind === "ds") acked.set(Number(res.headers.get("stream-next-offset").split("_")[0]), data);
      }
    };
    const writers = [httpWriter("native"), httpWriter("native"), httpWriter("ds"), httpWriter("ds")];
    await until(() => acked.size >= 1500, 60_000, "1500 acknowledged publishes");
    await server.stop({ crash: true });
    stopping = true;
    await Promise.all(writers);
    const before = acked.size;

    server = await startServer({ persist });
    const res = await fetch(`${server.url}/v1/stream/${SUBJECT}`, { headers: AUTH });
    const info = await res.json();
    const highest = Math.max(...acked.keys());
    assert.ok(info.last >= highest, `last ${info.last} is below the highest acknowledged seq ${highest}`);
    // Read everything back, page by page.
    const stored = new Map();
    for (;;) {
      const page = await fetch(`${server.url}/v1/stream/${SUBJECT}/messages?from=${stored.size + 1}&limit=1000`, { headers: AUTH });
      const body = await page.json();
      for (const m of body.messages) stored.set(m.seq, JSON.stringify(m.data));
      if (body.messages.length === 0 || body.next > info.last) break;
    }
    assert.equal(stored.size, info.last, "no gap in the stored sequence");
    for (const [seq, data] of acked) {
      assert.equal(stored.get(seq), JSON.stringify(JSON.parse(data)), `acknowledged seq ${seq}`);
    }
    // The sequence continues after the crash.
    const after = await fetch(`${server.url}/v1/stream/${SUBJECT}`, { method: "POST", headers: AUTH, body: '"after"' });
    assert.equal((await after.json()).seq, info.last + 1);
    assert.ok(before >= 1500);
  } finally {
    stopping = true;
    await server.stop();
  }
});
