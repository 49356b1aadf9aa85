// Restart of workerd on the same storage: the sequence continues, every acknowledged publish is
// still there byte for byte, and the state document, durable consumer positions, dedup keys
// and the epoch all survive.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, tempDir } from "./server.mjs";
import { scanJsonValue, sleep } from "./ws-client.mjs";
import { serverPerFile } from "./harness.mjs";

const persist = tempDir("restart-");
const harness = serverPerFile(() => startServer({ persist }));
const { open } = harness;

const SUBJECT = "restart.orders";
const OTHER = "restart.other";

test("everything acknowledged before a restart is there after it", { timeout: 120_000 }, async () => {
  // --- before the restart ---
  const c = await open(SUBJECT, "before");
  const epoch = c.hello.epoch;
  /** seq → exact JSON text */
  const published = new Map();
  const rawPub = async (id, field, text, extra = "") => {
    const since = c.frames.length;
    c.send(`{"op":"pub","id":"${id}",${extra}"${field}":${text}}`);
    const reply = await c.nextFrame((f) => f.id === id, { since });
    assert.equal(reply.op, "ok", JSON.stringify(reply));
    return reply;
  };
  const singles = ['{"a": 1,  "b":[true, null, 2.50]}', '"caf\u00e9 \ud83d\ude80 \\u00e9"', "123456789012345678901234567890", "[]"];
  for (const [i, text] of singles.entries()) {
    const r = await rawPub(`s${i}`, "data", text);
    published.set(r.seq, text);
  }
  const batch = ['{"k":"v"}', " 7 ", '"\\n\\t"', "{}"];
  const rb = await rawPub("b", "batch", `[${batch.join(",")}]`);
  batch.forEach((t, i) => published.set(rb.seq + i, t.trim()));
  const dedup = await c.ok({ op: "pub", data: "once", msgId: "restart-key" });
  published.set(dedup.seq, '"once"');
  const bulk = await c.ok({ op: "pub", batch: Array.from({ length: 500 }, (_, i) => ({ bulk: i })) });
  for (let i = 0; i < 500; i++) published.set(bulk.seq + i, JSON.stringify({ bulk: i }));
  const last = bulk.last;
  assert.equal(last, singles.length + batch.length + 1 + 500);

  // Trim the two oldest: the first retained and the byte count must survive too.
  await c.ok({ op: "trim", upto: 2 });
  published.delete(1);
  published.delete(2);

  assert.deepEqual(await c.request({ op: "state.put", id: "p1", state: { cursor: 1 } }), { op: "ok", id: "p1", version: 1 });
  assert.deepEqual(await c.request({ op: "state.put", id: "p2", state: { cursor: 2, big: 2 ** 60 }, version: 1 }), { op: "ok", id: "p2", version: 2 });

  const half = await open(SUBJECT, "consumer-half");
  await half.ok({ op: "sub", consumer: "half", window: 10000 });
  await half.waitForMessages(published.size);
  await half.ok({ op: "ack", seq: 100 });
  const full = await open(SUBJECT, "consumer-full");
  await full.ok({ op: "sub", consumer: "full", from: "first", window: 10000 });
  await full.waitForMessages(published.size);
  await full.ok({ op: "ack", seq: last });

  const other = await open(OTHER, "other");
  await other.ok({ op: "pub", batch: ["x", "y"] });
  const otherEpoch = other.hello.epoch;
  assert.notEqual(otherEpoch, epoch, "each subject has its own epoch");

  const infoBefore = await c.ok({ op: "info" });
  assert.deepEqual([infoBefore.first, infoBefore.last, infoBefore.consumers], [3, last, 2]);

  // --- restart workerd on the same storage ---
  await harness.server.stop();
  await Promise.all(harness.clients.map((k) => k.waitClosed(10_000)));
  for (const k of harness.clients) assert.ok(k.closed, `${k.label} was disconnected by the stop`);
  harness.server = await startServer({ persist });

  // --- after the restart ---
  const d = await open(SUBJECT, "after");
  assert.equal(d.hello.epoch, epoch, "epoch unchanged");
  assert.equal(d.hello.last, last);
  const infoAfter = await d.ok({ op: "info" });
  for (const field of ["subject", "first", "last", "count", "bytes", "consumers", "epoch"]) {
    assert.deepEqual(infoAfter[field], infoBefore[field], `info.${field}`);
  }
  assert.equal(infoAfter.connections, 1);
  assert.equal(infoAfter.subscribers, 0);

  // State and its version survive.
  const since = d.frames.length;
  d.send({ op: "state.get", id: "g" });
  const got = await d.nextFrame((f) => f.id === "g", { since });
  assert.equal(got.version, 2);
  const text = d.frames.at(-1).text;
  const at = text.indexOf('"state":') + 8;
  assert.equal(text.slice(at, scanJsonValue(text, at)), `{"cursor":2,"big":${2 ** 60}}`);
  assertErrConflict(await d.request({ op: "state.put", id: "stale", state: 0, version: 1 }));
  assert.deepEqual(await d.request({ op: "state.put", id: "p3", state: 3, version: 2 }), { op: "ok", id: "p3", version: 3 });

  // Dedup keys survive (within the window).
  assert.deepEqual(await d.request({ op: "pub", id: "dup", data: "once", msgId: "restart-key" }), { op: "ok", id: "dup", seq: dedup.seq, duplicate: true });

  // Every message, byte-identical, from "first".
  const reader = await open(SUBJECT, "reader");
  assert.deepEqual(await reader.request({ op: "sub", id: "r", from: "first", window: 10000 }), { op: "ok", id: "r", first: 3, last, from: 3 });
  await reader.waitForMessages(published.size);
  await sleep(100);
  assert.equal(reader.msgs.length, published.size);
  reader.msgs.forEach((m, i) => {
    assert.equal(m.seq, 3 + i);
    assert.equal(m.raw, published.get(m.seq), `seq ${m.seq} byte-identical`);
  });

  // Consumer positions survive.
  const half2 = await open(SUBJECT, "half-again");
  assert.deepEqual(await half2.request({ op: "sub", id: "h", consumer: "half" }), { op: "ok", id: "h", first: 3, last, from: 101 });
  await half2.waitForMessages(last - 100);
  assert.equal(half2.msgs[0].seq, 101);
  const full2 = await open(SUBJECT, "full-again");
  assert.deepEqual(await full2.request({ op: "sub", id: "f", consumer: "full" }), { op: "ok", id: "f", first: 3, last, from: last + 1 });

  // The sequence continues.
  assert.deepEqual(await d.request({ op: "pub", id: "next", data: "after restart" }), { op: "ok", id: "next", seq: last + 1 });
  await full2.waitForMessages(1);
  assert.deepEqual([full2.msgs[0].seq, full2.msgs[0].data], [last + 1, "after restart"]);

  const other2 = await open(OTHER, "other-again");
  assert.equal(other2.hello.epoch, otherEpoch);
  assert.equal(other2.hello.last, 2);
  assert.deepEqual(await other2.request({ op: "pub", id: 1, data: "z" }), { op: "ok", id: 1, seq: 3 });
});

function assertErrConflict(reply) {
  assert.equal(reply.op, "err", JSON.stringify(reply));
  assert.equal(reply.code, "conflict");
}
