// Delivery on real workerd: the flow-control window, durable consumers (resume across
// reconnects, takeover by a second connection) and publish deduplication by msgId.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { uniqueSubject, sleep } from "./ws-client.mjs";
import { serverPerFile } from "./harness.mjs";

const harness = serverPerFile();
const { open } = harness;

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Waits `ms`, then asserts the client still has exactly `n` messages (nothing more arrives). */
async function settlesAt(c, n, ms = 300) {
  await c.waitForMessages(n);
  await sleep(ms);
  assert.equal(c.msgs.length, n, `expected exactly ${n} messages, got seqs ${c.msgs.map((m) => m.seq)}`);
}

describe("flow control", () => {
  test("window 5 without acks: exactly 5 delivered; acks release exactly as many more", async () => {
    const subject = uniqueSubject("window");
    const p = await open(subject);
    await p.ok({ op: "pub", batch: range(1, 20).map((n) => ({ n })) });
    const c = await open(subject);
    await c.ok({ op: "sub", from: "first", window: 5 });
    await settlesAt(c, 5);
    assert.deepEqual(c.msgs.map((m) => m.seq), range(1, 5));
    assert.deepEqual(c.msgs.map((m) => m.data.n), range(1, 5));

    c.send({ op: "ack", seq: 2 });
    await settlesAt(c, 7);
    assert.deepEqual(c.msgs.map((m) => m.seq), range(1, 7));

    assert.deepEqual(await c.request({ op: "ack", id: "a7", seq: 7 }), { op: "ok", id: "a7" });
    await settlesAt(c, 12);
    assert.deepEqual(c.msgs.map((m) => m.seq), range(1, 12));

    c.send({ op: "ack", seq: 20 - 8 });
    await settlesAt(c, 17);
    c.send({ op: "ack", seq: 17 });
    await settlesAt(c, 20);
    assert.deepEqual(c.msgs.map((m) => m.seq), range(1, 20));
    assert.ok(c.msgs.every((m) => !m.redelivered));

    // Live messages respect the window too: 20 is unacked... ack to 18, leaving 2 in flight.
    c.send({ op: "ack", seq: 18 });
    for (let i = 21; i <= 26; i++) await p.ok({ op: "pub", data: { n: i } });
    await settlesAt(c, 23);
    assert.deepEqual(c.msgs.map((m) => m.seq), range(1, 23));
    c.send({ op: "ack", seq: 23 });
    await settlesAt(c, 26);
    assert.deepEqual(c.msgs.map((m) => m.data.n), range(1, 26));
  });

  test("without a window the default (1000) applies", async () => {
    const subject = uniqueSubject("defwindow");
    const p = await open(subject);
    await p.ok({ op: "pub", batch: range(1, 1000) });
    await p.ok({ op: "pub", batch: range(1001, 1200) });
    const c = await open(subject);
    await c.ok({ op: "sub", from: "first" });
    await settlesAt(c, 1000, 400);
    assert.equal(c.msgs.at(-1).seq, 1000);
    c.send({ op: "ack", seq: 1000 });
    await settlesAt(c, 1200);
    assert.deepEqual(c.msgs.map((m) => m.seq), range(1, 1200));
    assert.deepEqual(c.msgs.map((m) => m.data), range(1, 1200));
  });

  test("a window on live-only delivery: from new, window 3, five publishes", async () => {
    const subject = uniqueSubject("livewindow");
    const c = await open(subject);
    const p = await open(subject);
    await c.ok({ op: "sub", from: "new", window: 3 });
    for (let i = 1; i <= 5; i++) await p.ok({ op: "pub", data: `live${i}` });
    await settlesAt(c, 3);
    c.send({ op: "ack", seq: 3 });
    await settlesAt(c, 5);
    assert.deepEqual(c.msgs.map((m) => m.data), ["live1", "live2", "live3", "live4", "live5"]);
  });
});

describe("durable consumers", () => {
  test("the acked position is stored: a sub without from resumes after it on a new connection", async () => {
    const subject = uniqueSubject("durable");
    const p = await open(subject);
    await p.ok({ op: "pub", batch: range(1, 10).map((n) => `d${n}`) });
    const c1 = await open(subject, { label: "c1" });
    assert.deepEqual(await c1.request({ op: "sub", id: 1, consumer: "billing" }), { op: "ok", id: 1, first: 1, last: 10, from: 1 }, "a new consumer starts at the oldest message");
    await c1.waitForMessages(10);
    c1.send({ op: "ack", seq: 4 });
    assert.equal((await c1.ok({ op: "info" })).consumers, 1);
    c1.close();
    await c1.waitClosed();

    const c2 = await open(subject, { label: "c2" });
    assert.deepEqual(await c2.request({ op: "sub", id: 2, consumer: "billing" }), { op: "ok", id: 2, first: 1, last: 10, from: 5 });
    await settlesAt(c2, 6);
    assert.deepEqual(c2.msgs.map((m) => m.data), range(5, 10).map((n) => `d${n}`), "unacked messages come again, acked ones do not");
    await c2.ok({ op: "ack", seq: 10 });
    await c2.ok({ op: "unsub" });
    await p.ok({ op: "pub", data: "d11" });

    // Resume on the same connection after unsub, and a second consumer is independent.
    assert.deepEqual(await c2.request({ op: "sub", id: 3, consumer: "billing" }), { op: "ok", id: 3, first: 1, last: 11, from: 11 });
    await c2.waitForMessages(7);
    assert.equal(c2.msgs.at(-1).data, "d11");
    const other = await open(subject, { label: "other" });
    assert.deepEqual(await other.request({ op: "sub", id: 4, consumer: "audit" }), { op: "ok", id: 4, first: 1, last: 11, from: 1 });
    await other.waitForMessages(11);
    assert.equal((await other.ok({ op: "info" })).consumers, 2);
  });

  test("an explicit from moves the stored position", async () => {
    const subject = uniqueSubject("durablefrom");
    const p = await open(subject);
    await p.ok({ op: "pub", batch: range(1, 10) });
    const c1 = await open(subject);
    await c1.ok({ op: "sub", consumer: "x", from: 8 });
    await c1.waitForMessages(3);
    c1.close();
    await c1.waitClosed();
    const c2 = await open(subject);
    assert.deepEqual(await c2.request({ op: "sub", id: 1, consumer: "x" }), { op: "ok", id: 1, first: 1, last: 10, from: 8 }, "nothing acked: resumes where from put it");
    await c2.waitForMessages(3);
    await c2.ok({ op: "ack", seq: 9 });
    await c2.ok({ op: "unsub" });
    assert.deepEqual(await c2.request({ op: "sub", id: 2, consumer: "x", from: "first" }), { op: "ok", id: 2, first: 1, last: 10, from: 1 });
    await c2.ok({ op: "unsub" });
    assert.deepEqual(await c2.request({ op: "sub", id: 3, consumer: "x" }), { op: "ok", id: 3, first: 1, last: 10, from: 1 }, "from first reset the position");
  });

  test("a second connection with the same consumer takes over; the old one gets err conflict and stays usable", async () => {
    const subject = uniqueSubject("takeover");
    const p = await open(subject, { label: "publisher" });
    await p.ok({ op: "pub", batch: range(1, 5) });
    const old = await open(subject, { label: "old" });
    await old.ok({ op: "sub", consumer: "worker", window: 100 });
    await old.waitForMessages(5);
    await old.ok({ op: "ack", seq: 3 });

    const since = old.frames.length;
    const fresh = await open(subject, { label: "new" });
    assert.deepEqual(await fresh.request({ op: "sub", id: "take", consumer: "worker" }), { op: "ok", id: "take", first: 1, last: 5, from: 4 });
    const conflict = await old.nextFrame((f) => f.op === "err", { since, what: "takeover err" });
    assert.equal(conflict.code, "conflict");
    assert.equal(conflict.id, null);
    assert.match(conflict.message, /worker/);
    await fresh.waitForMessages(2);
    assert.deepEqual(fresh.msgs.map((m) => m.seq), [4, 5]);

    await p.ok({ op: "pub", data: 6 });
    await fresh.waitForMessages(3);
    await sleep(200);
    assert.deepEqual(old.msgs.map((m) => m.seq), [1, 2, 3, 4, 5], "the old connection gets nothing after the takeover");
    assert.equal(old.closed, null, "the old connection stays open");
    const info = await old.ok({ op: "info" });
    assert.equal(info.subscribers, 1, "only the new connection is subscribed");
    assertErr(await old.request({ op: "ack", id: "late", seq: 5 }), "bad_request", "late");
    // The old connection may subscribe again (taking the consumer back).
    const since2 = fresh.frames.length;
    await old.ok({ op: "sub", consumer: "worker" });
    const back = await fresh.nextFrame((f) => f.op === "err", { since: since2 });
    assert.equal(back.code, "conflict");
  });
});

function assertErr(reply, code, id) {
  assert.equal(reply.op, "err", JSON.stringify(reply));
  assert.equal(reply.code, code);
  assert.deepEqual(reply.id, id);
}

describe("dedup", () => {
  test("the same msgId answers with the original seq and duplicate:true, storing nothing", async () => {
    const subject = uniqueSubject("dedup");
    const p = await open(subject);
    const live = await open(subject);
    await live.ok({ op: "sub", from: "new" });
    assert.deepEqual(await p.request({ op: "pub", id: 1, data: "A", msgId: "m-1" }), { op: "ok", id: 1, seq: 1 });
    assert.deepEqual(await p.request({ op: "pub", id: 2, data: "B", msgId: "m-2" }), { op: "ok", id: 2, seq: 2 });
    assert.deepEqual(await p.request({ op: "pub", id: 3, data: "A again", msgId: "m-1" }), { op: "ok", id: 3, seq: 1, duplicate: true });
    const second = await open(subject);
    assert.deepEqual(await second.request({ op: "pub", id: "x", data: "A", msgId: "m-1" }), { op: "ok", id: "x", seq: 1, duplicate: true }, "across connections");
    assert.deepEqual(await p.request({ op: "pub", id: 4, data: "C" }), { op: "ok", id: 4, seq: 3 });
    const info = await p.ok({ op: "info" });
    assert.equal(info.count, 3);
    assert.equal(info.last, 3);
    await settlesAt(live, 3);
    assert.deepEqual(live.msgs.map((m) => [m.seq, m.data]), [[1, "A"], [2, "B"], [3, "C"]], "a duplicate is never delivered");

    const elsewhere = await open(uniqueSubject("dedup-other"));
    assert.deepEqual(await elsewhere.request({ op: "pub", id: 5, data: "A", msgId: "m-1" }), { op: "ok", id: 5, seq: 1 }, "msgIds are per subject");
  });

  test("a batch with a msgId is deduplicated as a whole", async () => {
    const subject = uniqueSubject("dedupbatch");
    const p = await open(subject);
    await p.ok({ op: "pub", data: 0 });
    assert.deepEqual(await p.request({ op: "pub", id: "b1", batch: ["x", "y", "z"], msgId: "batch-1" }), { op: "ok", id: "b1", seq: 2, last: 4 });
    assert.deepEqual(await p.request({ op: "pub", id: "b2", batch: ["x", "y", "z"], msgId: "batch-1" }), { op: "ok", id: "b2", seq: 2, last: 4, duplicate: true });
    assert.deepEqual(await p.request({ op: "pub", id: "b3", batch: ["other"], msgId: "batch-1" }), { op: "ok", id: "b3", seq: 2, last: 4, duplicate: true });
    assert.deepEqual(await p.request({ op: "pub", id: "b4", batch: ["w"], msgId: "batch-2" }), { op: "ok", id: "b4", seq: 5, last: 5 });
    const info = await p.ok({ op: "info" });
    assert.equal(info.count, 5);
    const s = await open(subject);
    await s.ok({ op: "sub", from: "first" });
    await settlesAt(s, 5);
    assert.deepEqual(s.msgs.map((m) => m.data), [0, "x", "y", "z", "w"]);
  });
});
