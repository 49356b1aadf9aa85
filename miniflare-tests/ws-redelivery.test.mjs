// Redelivery on real workerd with a short ack wait (ACK_WAIT_MS=300, MAX_DELIVER=3): unacked
// messages come again marked redelivered:true (driven by the Durable Object's alarm), then a
// `skipped` frame after the max-deliver count; acks reset the count. Also the dedup window
// (DEDUP_WINDOW_MS=1000) expiring.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "./server.mjs";
import { uniqueSubject, sleep } from "./ws-client.mjs";
import { serverPerFile } from "./harness.mjs";

const ACK_WAIT_MS = 300;
const MAX_DELIVER = 3;

const harness = serverPerFile(() => startServer({ vars: { ACK_WAIT_MS: String(ACK_WAIT_MS), MAX_DELIVER: String(MAX_DELIVER), DEDUP_WINDOW_MS: "1000" } }));
const { open } = harness;

/** The delivery frames (msg/msgs/skipped) received so far (from frame `since` on), with their
 *  arrival time. */
function deliveries(c, since = 0) {
  return c.frames
    .slice(since)
    .filter((f) => ["msg", "msgs", "skipped"].includes(f.frame.op))
    .map((f) => ({
      op: f.frame.op,
      at: f.at,
      seqs: f.frame.op === "msg" ? [f.frame.seq] : f.frame.op === "msgs" ? f.frame.messages.map((m) => m.seq) : null,
      redelivered: f.frame.op === "msg" ? !!f.frame.redelivered : f.frame.op === "msgs" ? f.frame.messages.map((m) => !!m.redelivered) : null,
      skipped: f.frame.op === "skipped" ? { first: f.frame.first, last: f.frame.last } : null,
      frame: f.frame,
    }));
}

const skippedFrame = (c, since = 0) => c.nextFrame((f) => f.op === "skipped", { since, timeout: 5_000, what: "skipped" });

describe("redelivery", () => {
  test("unacked messages are resent with redelivered:true, then skipped after MAX_DELIVER deliveries", async () => {
    const subject = uniqueSubject("redeliver");
    const c = await open(subject, "sub");
    await c.ok({ op: "pub", batch: ["r1", { r: 2 }, [3]] });
    const subAt = Date.now();
    await c.ok({ op: "sub", from: "first", window: 10 });
    const skipped = await skippedFrame(c);
    assert.deepEqual(skipped, { op: "skipped", first: 1, last: 3 });
    const d = deliveries(c);
    assert.equal(d.length, MAX_DELIVER + 1, `deliveries: ${JSON.stringify(d.map((x) => [x.op, x.seqs]))}`);
    for (let k = 0; k < MAX_DELIVER; k++) {
      assert.deepEqual(d[k].seqs, [1, 2, 3], `delivery ${k + 1}`);
      assert.deepEqual(d[k].redelivered, [k > 0, k > 0, k > 0], `delivery ${k + 1} marked redelivered only when resent`);
    }
    assert.equal(d[MAX_DELIVER].op, "skipped");
    // Each resend waits at least the ack wait (alarm timing is coarse; allow slack only above).
    for (let k = 1; k <= MAX_DELIVER; k++) {
      const gap = d[k].at - d[k - 1].at;
      assert.ok(gap >= ACK_WAIT_MS - 50, `gap before delivery ${k + 1} was ${gap} ms`);
      assert.ok(gap < ACK_WAIT_MS + 2000, `gap before delivery ${k + 1} was ${gap} ms`);
    }
    assert.ok(d[MAX_DELIVER].at - subAt >= MAX_DELIVER * ACK_WAIT_MS - 100);
    // Redelivered bytes are the published bytes.
    const raws = c.msgs.map((m) => m.raw);
    assert.deepEqual(raws, Array(MAX_DELIVER).fill(['"r1"', '{"r":2}', "[3]"]).flat());

    // After the skip, nothing more comes for those messages...
    await sleep(3 * ACK_WAIT_MS);
    assert.equal(deliveries(c).length, MAX_DELIVER + 1, "no more deliveries after skipped");
    // ...acking a skipped message is a harmless repeat, and new messages are delivered normally.
    assert.deepEqual(await c.request({ op: "ack", id: "old", seq: 3 }), { op: "ok", id: "old" });
    await c.ok({ op: "pub", data: "r4" });
    await c.waitForMessages(3 * MAX_DELIVER + 1);
    const fresh = c.msgs.at(-1);
    assert.deepEqual([fresh.seq, fresh.data, fresh.redelivered], [4, "r4", false]);
    await c.ok({ op: "ack", seq: 4 });
    await sleep(3 * ACK_WAIT_MS);
    assert.equal(c.msgs.length, 3 * MAX_DELIVER + 1, "an acked message is not resent");
  });

  test("an ack moves the redelivery past what it covers and resets the delivery count", async () => {
    const subject = uniqueSubject("partial");
    const c = await open(subject, "sub");
    await c.ok({ op: "pub", batch: [1, 2, 3, 4] });
    // Acks 1..2 as soon as the first redelivery arrives (from the frame handler: no polling
    // delay). Only what follows the ack's reply was sent after the subject applied the ack.
    let acking = false;
    c.onFrame = (frame, client) => {
      const resent = frame.op === "msg" ? frame.redelivered : frame.op === "msgs" && frame.messages.some((m) => m.redelivered);
      if (resent && !acking) {
        acking = true;
        client.send({ op: "ack", id: "partial-ack", seq: 2 });
      }
    };
    await c.ok({ op: "sub", from: "first" });
    await c.nextFrame((f) => f.id === "partial-ack", { since: 0, timeout: 10_000, what: "the ack's reply" });
    const acked = c.frames.findIndex((f) => f.frame.id === "partial-ack");
    assert.equal(c.frames[acked].frame.op, "ok", JSON.stringify(c.frames[acked].frame));
    const skipped = await skippedFrame(c, acked);
    assert.deepEqual(skipped, { op: "skipped", first: 3, last: 4 });
    const after = deliveries(c, acked).filter((d) => d.op !== "skipped");
    assert.deepEqual(after.map((d) => d.seqs), Array(MAX_DELIVER - 1).fill([3, 4]), "after the ack only 3..4 come again, the count restarted");
    assert.ok(after.every((d) => d.redelivered.every(Boolean)));
  });

  test("messages acked in time are never redelivered", async () => {
    const subject = uniqueSubject("ontime");
    const c = await open(subject, "sub");
    const p = await open(subject, "pub");
    c.onFrame = (frame, client) => {
      if (frame.op === "msg" || frame.op === "msgs") client.send({ op: "ack", seq: client.msgs.at(-1).seq });
    };
    await c.ok({ op: "sub", from: "new", window: 5 });
    for (let i = 1; i <= 20; i++) await p.ok({ op: "pub", data: i });
    await c.waitForMessages(20);
    await sleep(3 * ACK_WAIT_MS);
    assert.deepEqual(c.msgs.map((m) => m.seq), Array.from({ length: 20 }, (_, i) => i + 1));
    assert.ok(c.msgs.every((m) => !m.redelivered));
    assert.equal(c.framesOf("skipped").length, 0);
  });

  test("a durable consumer's position moves past skipped messages", async () => {
    const subject = uniqueSubject("durskip");
    const c1 = await open(subject, "c1");
    await c1.ok({ op: "pub", batch: ["a", "b"] });
    await c1.ok({ op: "sub", consumer: "slow" });
    assert.deepEqual(await skippedFrame(c1), { op: "skipped", first: 1, last: 2 });
    await c1.ok({ op: "pub", data: "c" });
    await c1.waitFor(() => c1.msgs.some((m) => m.seq === 3), 3000, "seq 3");
    c1.close();
    await c1.waitClosed();
    const c2 = await open(subject, "c2");
    assert.deepEqual(await c2.request({ op: "sub", id: 1, consumer: "slow" }), { op: "ok", id: 1, first: 1, last: 3, from: 3 }, "resumes after the skipped messages (3 was delivered, not acked)");
    await c2.waitForMessages(1);
    assert.equal(c2.msgs[0].data, "c");
    assert.equal(c2.msgs[0].redelivered, false);
  });

  test("unsub stops redelivery", async () => {
    const subject = uniqueSubject("unsubre");
    const c = await open(subject, "sub");
    await c.ok({ op: "pub", data: 1 });
    await c.ok({ op: "sub", from: "first" });
    await c.waitForMessages(1);
    await c.ok({ op: "unsub" });
    await sleep(3 * ACK_WAIT_MS);
    assert.equal(c.msgs.length, 1);
    assert.equal(c.framesOf("skipped").length, 0);
  });
});

describe("dedup window", () => {
  test("a msgId is forgotten after DEDUP_WINDOW_MS", async () => {
    const subject = uniqueSubject("dedupexp");
    const c = await open(subject, "pub");
    assert.deepEqual(await c.request({ op: "pub", id: 1, data: "a", msgId: "k" }), { op: "ok", id: 1, seq: 1 });
    assert.deepEqual(await c.request({ op: "pub", id: 2, data: "a", msgId: "k" }), { op: "ok", id: 2, seq: 1, duplicate: true });
    await sleep(1300);
    assert.deepEqual(await c.request({ op: "pub", id: 3, data: "a", msgId: "k" }), { op: "ok", id: 3, seq: 2 });
    assert.deepEqual(await c.request({ op: "pub", id: 4, data: "a", msgId: "k" }), { op: "ok", id: 4, seq: 2, duplicate: true });
  });
});

describe("redelivery after a trim", () => {
  test("unacked messages left after a trim are still redelivered, then skipped", async () => {
    const subject = uniqueSubject("trimre");
    const c = await open(subject, "sub");
    await c.ok({ op: "pub", batch: Array.from({ length: 10 }, (_, i) => i + 1) });
    await c.ok({ op: "sub", from: "first", window: 10 });
    await c.waitForMessages(10);
    const since = c.frames.length;
    assert.deepEqual(await c.request({ op: "trim", id: "t", upto: 4 }), { op: "ok", id: "t", first: 5, last: 10, deleted: 4 });
    const resent = await c.nextFrame((f) => f.op === "msgs" && f.messages[0].redelivered, { since, timeout: 3000, what: "redelivery of 5..10" });
    assert.deepEqual(resent.messages.map((m) => m.seq), [5, 6, 7, 8, 9, 10]);
    const skipped = await skippedFrame(c, since);
    assert.deepEqual(skipped, { op: "skipped", first: 5, last: 10 });
  });
});
