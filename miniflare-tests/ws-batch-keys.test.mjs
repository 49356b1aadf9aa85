// Batches whose entries carry their own idempotency keys (`msgIds`), on real workerd: the reply
// names every entry's sequence and the duplicates, only new entries are stored (contiguously)
// and delivered, a resent batch stores nothing twice, the old batch forms still work, and bad
// `msgIds` are refused with an `err` on a connection that keeps working.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { uniqueSubject, sleep } from "./ws-client.mjs";
import { serverPerFile } from "./harness.mjs";
import { startServer, TEST_KEY } from "./server.mjs";

const harness = serverPerFile();
const { open } = harness;
// Keys forgotten as soon as the clock moves on: a resend is stored again.
const forgetful = serverPerFile(() => startServer({ vars: { DEDUP_WINDOW_MS: "0" } }));

async function stored(subject, server = harness.server) {
  const page = await fetch(`${server.url}/v1/stream/${subject}/messages?from=1&limit=100`, {
    headers: { Authorization: `Bearer ${TEST_KEY}` },
  });
  assert.equal(page.status, 200);
  return (await page.json()).messages.map((m) => ({ seq: m.seq, data: m.data, ...(m.headers ? { headers: m.headers } : {}) }));
}

describe("pub with msgIds", () => {
  test("new entries take contiguous sequences; duplicates answer their original ones and are stored once", async () => {
    const subject = uniqueSubject("keys");
    const c = await open(subject);
    assert.deepEqual(await c.request({ op: "pub", id: 1, data: "old", msgId: "k-old" }), { op: "ok", id: 1, seq: 1 });
    const reply = await c.request({
      op: "pub",
      id: 2,
      batch: ["a", "dup-of-old", "b", "dup-in-batch", "unkeyed"],
      headers: [{ type: "A" }, null, null, null, { type: "U" }],
      msgIds: ["k-a", "k-old", "k-b", "k-a", null],
    });
    assert.deepEqual(reply, { op: "ok", id: 2, seqs: [2, 1, 3, 2, 4], duplicates: [1, 3] });
    assert.deepEqual(await stored(subject), [
      { seq: 1, data: "old" },
      { seq: 2, data: "a", headers: { type: "A" } },
      { seq: 3, data: "b" },
      { seq: 4, data: "unkeyed", headers: { type: "U" } },
    ]);

    // The same batch again (a resend after a lost reply): every keyed entry is a duplicate,
    // the unkeyed one is new.
    const again = await c.request({ op: "pub", id: 3, batch: ["a", "x", "b", "y", "unkeyed"], msgIds: ["k-a", "k-old", "k-b", "k-a", null] });
    assert.deepEqual(again, { op: "ok", id: 3, seqs: [2, 1, 3, 2, 5], duplicates: [0, 1, 2, 3] });
    const all = await c.request({ op: "pub", id: 4, batch: [1, 2], msgIds: ["k-a", "k-b"] });
    assert.deepEqual(all, { op: "ok", id: 4, seqs: [2, 3], duplicates: [0, 1] });
    const info = await c.ok({ op: "info", id: 5 });
    assert.equal(info.last, 5);
  });

  test("a batch of MAX_BATCH_MESSAGES keyed entries is stored and deduplicated as a whole", async () => {
    const subject = uniqueSubject("keys-max");
    const c = await open(subject);
    const batch = Array.from({ length: 1000 }, (_, i) => ({ i }));
    const msgIds = batch.map((_, i) => `key-${i}`);
    const first = await c.ok({ op: "pub", id: 1, batch, msgIds });
    assert.deepEqual(first.seqs, batch.map((_, i) => i + 1));
    assert.deepEqual(first.duplicates, []);
    const again = await c.ok({ op: "pub", id: 2, batch, msgIds });
    assert.deepEqual(again.seqs, first.seqs);
    assert.equal(again.duplicates.length, 1000);
    assert.equal((await c.ok({ op: "info", id: 3 })).count, 1000);
  });

  test("subscribers receive only the new entries, in order", async () => {
    const subject = uniqueSubject("keys-sub");
    const reader = await open(subject);
    await reader.ok({ op: "sub", id: "s", from: "new" });
    const writer = await open(subject);
    await writer.ok({ op: "pub", batch: [10, 11], msgIds: ["m-10", "m-11"] });
    await writer.ok({ op: "pub", batch: [11, 12], msgIds: ["m-11", "m-12"] });
    await reader.waitForMessages(3);
    assert.deepEqual(reader.msgs.map((m) => [m.seq, m.data]), [[1, 10], [2, 11], [3, 12]]);
  });

  test("expectLastSeq applies to the new entries; an all-duplicate resend never conflicts", async () => {
    const subject = uniqueSubject("keys-cond");
    const c = await open(subject);
    assert.deepEqual(await c.request({ op: "pub", id: 1, batch: [1, 2], msgIds: ["c-1", "c-2"], expectLastSeq: 0 }), {
      op: "ok", id: 1, seqs: [1, 2], duplicates: [],
    });
    assert.deepEqual(await c.request({ op: "pub", id: 2, batch: [1, 2], msgIds: ["c-1", "c-2"], expectLastSeq: 0 }), {
      op: "ok", id: 2, seqs: [1, 2], duplicates: [0, 1],
    });
    const refused = await c.request({ op: "pub", id: 3, batch: [1, 3], msgIds: ["c-1", "c-3"], expectLastSeq: 0 });
    assert.equal(refused.op, "err");
    assert.equal(refused.code, "conflict");
    assert.equal(refused.lastSeq, 2);
    assert.equal((await c.ok({ op: "info", id: 4 })).last, 2, "nothing of a refused batch is stored");
  });

  test("the batch forms without msgIds still work", async () => {
    const subject = uniqueSubject("keys-old");
    const c = await open(subject);
    assert.deepEqual(await c.request({ op: "pub", id: 1, batch: [1, 2, 3], msgId: "whole" }), { op: "ok", id: 1, seq: 1, last: 3 });
    assert.deepEqual(await c.request({ op: "pub", id: 2, batch: [1, 2, 3], msgId: "whole" }), { op: "ok", id: 2, seq: 1, last: 3, duplicate: true });
    assert.deepEqual(await c.request({ op: "pub", id: 3, batch: [4], headers: [{ a: "b" }] }), { op: "ok", id: 3, seq: 4, last: 4 });
  });

  test("bad msgIds are refused with the request id, nothing is stored, and the connection keeps working", async () => {
    const subject = uniqueSubject("keys-bad");
    const c = await open(subject);
    for (const [frame, message] of [
      [{ data: 1, msgIds: ["a"] }, "`msgIds` needs `batch`"],
      [{ batch: [1, 2], msgIds: ["a"] }, "`msgIds` must be an array of 2 strings or nulls, one per `batch` entry"],
      [{ batch: [1], msgIds: {} }, "`msgIds` must be an array of 1 strings or nulls"],
      [{ batch: [1, 2], msgIds: ["a", 3] }, "`msgIds[1]`: `msgId` must be a string"],
      [{ batch: [1, 2], msgIds: ["a", ""] }, "`msgIds[1]`: msgId must be 1 to 256 bytes"],
      [{ batch: [1], msgIds: ["k".repeat(257)] }, "`msgIds[0]`: msgId must be 1 to 256 bytes"],
      [{ batch: [1], msgIds: ["a"], msgId: "b" }, "`msgId` and `msgIds` are mutually exclusive"],
    ]) {
      const reply = await c.request({ op: "pub", id: "bad", ...frame });
      assert.equal(reply.op, "err", JSON.stringify(reply));
      assert.equal(reply.code, "bad_request");
      assert.equal(reply.id, "bad");
      assert.ok(reply.message.startsWith(message), `${reply.message} should start with ${message}`);
    }
    const info = await c.ok({ op: "info", id: "alive" });
    assert.equal(info.last, 0);
  });
});

describe("pub with msgIds after the dedup window", () => {
  test("expired keys are taken by the new entries, which are stored again", async () => {
    const subject = uniqueSubject("keys-expired");
    const c = await forgetful.open(subject);
    const frame = { op: "pub", batch: ["a", "b"], msgIds: ["k-a", "k-b"] };
    assert.deepEqual(await c.request({ ...frame, id: 1 }), { op: "ok", id: 1, seqs: [1, 2], duplicates: [] });
    await sleep(20); // past the window of 0 ms: the clock has moved on
    assert.deepEqual(await c.request({ ...frame, id: 2 }), { op: "ok", id: 2, seqs: [3, 4], duplicates: [] });
    await sleep(20);
    const single = await c.request({ op: "pub", id: 3, data: "c", msgId: "k-a" });
    assert.deepEqual(single, { op: "ok", id: 3, seq: 5 }, "the key moved on to the resend's entry, and on again");
    assert.deepEqual((await stored(subject, forgetful.server)).map((m) => m.data), ["a", "b", "a", "b", "c"]);
  });
});
