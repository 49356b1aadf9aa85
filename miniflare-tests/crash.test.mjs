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

// A publish stores its idempotency key in its message's row and moves the counters in memory,
// saving them every 1,024 messages; a restart counts the rows after the saved ones. Killed
// mid-flight, across several such saves: no key survives without its message, and the
// counters (last, count, bytes) are those of the stored rows.
test("a SIGKILL leaves no idempotency key or count without its message", { timeout: 240_000 }, async () => {
  const subject = "crash.keys";
  const persist = tempDir("crash-keys-");
  let server = await startServer({ persist });
  /** msgId -> [the exact text published, or the texts of a batch] */
  const sent = new Map();
  /** msgId -> seq acknowledged */
  const acked = new Map();
  let stopping = false;
  try {
    const ws = await connect(server, subject);
    let next = 0;
    const publish = () => {
      const msgId = `k${next}`;
      // Every 25th publish is a batch of three under one key.
      const texts = (next % 25 === 0 ? [0, 1, 2] : [0]).map((part) => JSON.stringify({ n: next, part, pad: "y".repeat(next % 200) }));
      sent.set(msgId, texts);
      const body = texts.length === 1 ? `"data":${texts[0]}` : `"batch":[${texts.join(",")}]`;
      ws.send(`{"op":"pub","id":"${msgId}","msgId":"${msgId}",${body}}`);
      next++;
    };
    ws.onFrame = (frame) => {
      if (frame.op === "ok" && sent.has(frame.id)) {
        acked.set(frame.id, frame.seq);
        if (!stopping) publish();
      }
    };
    for (let i = 0; i < 32; i++) publish();
    await until(() => acked.size >= 3000, 120_000, "3000 acknowledged keyed publishes");
    await server.stop({ crash: true });
    stopping = true;

    server = await startServer({ persist });
    const readAll = async () => {
      const info = await (await fetch(`${server.url}/v1/stream/${subject}`, { headers: AUTH })).json();
      const stored = new Map();
      for (;;) {
        const page = await (await fetch(`${server.url}/v1/stream/${subject}/messages?from=${stored.size + 1}&limit=1000`, { headers: AUTH })).json();
        for (const m of page.messages) stored.set(m.seq, JSON.stringify(m.data));
        if (page.messages.length === 0 || page.next > info.last) break;
      }
      return { info, stored };
    };
    const { info, stored } = await readAll();
    assert.equal(stored.size, info.last, "no gap in the stored sequence");
    assert.equal(info.count, info.last);
    const bytes = [...stored.values()].reduce((sum, text) => sum + Buffer.byteLength(text), 0);
    assert.equal(info.bytes, bytes, "bytes counts exactly the stored messages");
    for (const [msgId, seq] of acked) {
      sent.get(msgId).forEach((text, k) => assert.equal(stored.get(seq + k), text, `${msgId} acknowledged as ${seq}`));
    }

    // Every key sent, acknowledged or not, published again: a key whose message is stored is a
    // duplicate naming that message; a key whose publish was lost appends anew.
    const again = await connect(server, subject);
    let last = info.last;
    for (const [msgId, texts] of sent) {
      const frame = texts.length === 1 ? { op: "pub", msgId, data: JSON.parse(texts[0]) } : { op: "pub", msgId, batch: texts.map((t) => JSON.parse(t)) };
      const reply = await again.ok(frame);
      if (reply.duplicate) {
        assert.ok(!acked.has(msgId) || acked.get(msgId) === reply.seq, `${msgId}: duplicate of ${reply.seq}, acknowledged as ${acked.get(msgId)}`);
        texts.forEach((text, k) => assert.equal(stored.get(reply.seq + k), text, `${msgId}: its key names message ${reply.seq + k}`));
      } else {
        assert.ok(!acked.has(msgId), `${msgId} was acknowledged as ${acked.get(msgId)} but appended again`);
        assert.equal(reply.seq, last + 1, `${msgId} appends after the last message`);
        last += texts.length;
      }
    }
    const after = await readAll();
    assert.equal(after.info.last, last);
    assert.equal(after.stored.size, last, "no gap after the retries");
    assert.equal(after.info.bytes, [...after.stored.values()].reduce((sum, text) => sum + Buffer.byteLength(text), 0));
  } finally {
    stopping = true;
    await server.stop();
  }
});
