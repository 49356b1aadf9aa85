// Replay → live on real workerd: subscribers start from "first" on a 3,000-message backlog while
// three other connections publish 1,000 messages each. Every subscriber must receive every
// sequence exactly once, strictly increasing with no gap, with exactly the published bytes.

import { test } from "node:test";
import assert from "node:assert/strict";
import { uniqueSubject, until } from "./ws-client.mjs";
import { serverPerFile } from "./harness.mjs";

const harness = serverPerFile();
const { open } = harness;

const BACKLOG = 3000;
const PER_PUBLISHER = 1000;
const PUBLISHERS = 3;
const TOTAL = BACKLOG + PUBLISHERS * PER_PUBLISHER;

/** Checks that `c` received seqs 1..TOTAL exactly once, in order, with the published bytes. */
function assertComplete(c, published) {
  const seqs = c.msgs.map((m) => m.seq);
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== i + 1) {
      assert.fail(`${c.label}: position ${i} has seq ${seqs[i]}, expected ${i + 1} (around: ${seqs.slice(Math.max(0, i - 3), i + 4)})`);
    }
  }
  assert.equal(seqs.length, TOTAL, `${c.label}: received ${seqs.length} of ${TOTAL}`);
  for (const m of c.msgs) {
    assert.equal(m.raw, published.get(m.seq), `${c.label}: data of seq ${m.seq}`);
    assert.equal(m.redelivered, false, `${c.label}: seq ${m.seq} redelivered`);
  }
  for (let i = 1; i < c.msgs.length; i++) {
    assert.ok(c.msgs[i].ts >= c.msgs[i - 1].ts, `${c.label}: timestamps never go backwards (seq ${c.msgs[i].seq})`);
  }
}

test("backlog then live with concurrent publishers: every seq exactly once, in order, byte-identical", { timeout: 120_000 }, async () => {
  const subject = uniqueSubject("replay");
  /** seq → the exact JSON text published */
  const published = new Map();

  const seeder = await open(subject, "seeder");
  for (let b = 0; b < BACKLOG / 1000; b++) {
    const texts = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ pre: b * 1000 + i, pad: "é".repeat(i % 7), ok: i % 2 === 0 }));
    const reply = await seeder.ok({ op: "pub", batch: texts.map((t) => JSON.parse(t)) });
    assert.equal(reply.last - reply.seq, 999);
    texts.forEach((t, i) => published.set(reply.seq + i, t));
  }
  assert.equal(published.size, BACKLOG);

  const subscribers = await Promise.all([
    open(subject, "big-window"),
    open(subject, "small-window"),
    open(subject, "durable"),
  ]);
  const publishers = await Promise.all(Array.from({ length: PUBLISHERS }, (_, k) => open(subject, `publisher-${k}`)));

  // big-window: window 10000, acks every 100 messages.
  subscribers[0].onFrame = (frame, c) => {
    if ((frame.op === "msg" || frame.op === "msgs") && c.msgs.length % 100 < (frame.messages?.length ?? 1)) {
      c.send({ op: "ack", seq: c.msgs.at(-1).seq });
    }
  };
  // small-window and durable: window 50 / 300, ack everything received after each frame.
  const ackAll = (frame, c) => {
    if (frame.op === "msg" || frame.op === "msgs") c.send({ op: "ack", seq: c.msgs.at(-1).seq });
  };
  subscribers[1].onFrame = ackAll;
  subscribers[2].onFrame = ackAll;

  // Three publishing styles at once: awaited singles, pipelined singles, awaited batches of 10.
  const publishAll = async (p, k) => {
    const texts = Array.from({ length: PER_PUBLISHER }, (_, i) => JSON.stringify({ p: k, i, s: `publisher ${k} message ${i}` }));
    if (k === 0) {
      for (const t of texts) {
        const r = await p.ok({ op: "pub", data: JSON.parse(t) });
        published.set(r.seq, t);
      }
    } else if (k === 1) {
      const replies = texts.map((t) => p.ok({ op: "pub", data: JSON.parse(t) }, { timeout: 60_000 }));
      (await Promise.all(replies)).forEach((r, i) => published.set(r.seq, texts[i]));
    } else {
      for (let i = 0; i < texts.length; i += 10) {
        const chunk = texts.slice(i, i + 10);
        const r = await p.ok({ op: "pub", batch: chunk.map((t) => JSON.parse(t)) });
        assert.equal(r.last - r.seq, chunk.length - 1);
        chunk.forEach((t, j) => published.set(r.seq + j, t));
      }
    }
  };
  // Subscribe once the publishers are well under way, so that catch-up and live fan-out overlap.
  const publishing = Promise.all(publishers.map(publishAll));
  await until(() => published.size >= BACKLOG + 600, 30_000, "publishers under way");
  const subReplies = await Promise.all([
    subscribers[0].request({ op: "sub", id: "s0", from: "first", window: 10000 }),
    subscribers[1].request({ op: "sub", id: "s1", from: "first", window: 50 }),
    subscribers[2].request({ op: "sub", id: "s2", from: "first", window: 300, consumer: "replayer" }),
  ]);

  await publishing;

  for (const reply of subReplies) {
    assert.equal(reply.op, "ok", JSON.stringify(reply));
    assert.equal(reply.first, 1);
    assert.equal(reply.from, 1);
    assert.ok(reply.last >= BACKLOG + 600 && reply.last < TOTAL, `subscribed while publishing: last ${reply.last}`);
  }
  assert.equal(published.size, TOTAL, "every publish got its own seq");
  assert.deepEqual([...published.keys()].sort((a, b) => a - b), Array.from({ length: TOTAL }, (_, i) => i + 1), "seqs 1..TOTAL were assigned");

  await Promise.all(subscribers.map((c) => c.waitForMessages(TOTAL, 60_000)));
  // Settle: nothing more (no duplicates) arrives.
  await new Promise((r) => setTimeout(r, 300));
  for (const c of subscribers) assertComplete(c, published);

  const info = await seeder.ok({ op: "info" });
  assert.equal(info.last, TOTAL);
  assert.equal(info.count, TOTAL);
  assert.equal(info.subscribers, 3);
  assert.equal(info.consumers, 1);

  // The durable consumer's position followed its acks: resuming it starts after the last seq.
  subscribers[2].onFrame = null;
  await subscribers[2].ok({ op: "ack", seq: TOTAL });
  await subscribers[2].ok({ op: "unsub" });
  const resumed = await subscribers[2].ok({ op: "sub", consumer: "replayer" });
  assert.equal(resumed.from, TOTAL + 1);
});
