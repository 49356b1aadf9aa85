// Every WebSocket op on real workerd: happy paths, each error, request ids (string and number)
// echoed, and bad input of every kind answered with an `err` frame on a connection that keeps
// working afterwards.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { uniqueSubject, sleep, scanJsonValue } from "./ws-client.mjs";
import { serverPerFile } from "./harness.mjs";

const MAX_SEQ = 2 ** 53 - 1;

const harness = serverPerFile();
const { open, evict } = harness;

function assertErr(reply, code, id, messagePart) {
  assert.equal(reply.op, "err", `expected err ${code}, got ${JSON.stringify(reply)}`);
  assert.equal(reply.code, code, JSON.stringify(reply));
  assert.deepEqual(reply.id, id, `id echoed in ${JSON.stringify(reply)}`);
  assert.equal(typeof reply.message, "string");
  assert.ok(reply.message.length > 0);
  if (messagePart) assert.ok(reply.message.includes(messagePart), `message ${JSON.stringify(reply.message)} should mention ${messagePart}`);
  assert.deepEqual(Object.keys(reply).sort(), ["code", "id", "message", "op"]);
}

/** Proves the connection still answers requests (and that it is the same subject). */
async function stillWorks(c, subject) {
  const info = await c.ok({ op: "info", id: `alive-${Date.now()}` });
  assert.equal(info.subject, subject);
  return info;
}

/** Sends raw text and waits for the next err frame. */
async function rawErr(c, text) {
  const since = c.frames.length;
  c.send(text);
  return c.nextFrame((f) => f.op === "err", { since, what: `err for ${String(text).slice(0, 60)}` });
}

describe("hello", () => {
  test("a new subject says hello with last 0, a used one with its last sequence and the same epoch", async () => {
    const subject = uniqueSubject("hello");
    const a = await open(subject);
    assert.deepEqual(Object.keys(a.hello).sort(), ["epoch", "last", "op", "subject"]);
    assert.equal(a.hello.subject, subject);
    assert.equal(a.hello.last, 0);
    assert.match(a.hello.epoch, /^[0-9a-f]{8,}$/);
    await a.ok({ op: "pub", batch: [1, 2, 3] });
    const b = await open(subject);
    assert.equal(b.hello.last, 3);
    assert.equal(b.hello.epoch, a.hello.epoch);
    assert.equal(b.frames[0].frame.op, "hello", "hello is the first frame");
  });
});

describe("pub", () => {
  test("single messages get consecutive seqs; string and number ids are echoed", async () => {
    const subject = uniqueSubject("pub");
    const c = await open(subject);
    const r1 = await c.request({ op: "pub", id: "first-pub", data: { a: 1 } });
    assert.deepEqual(r1, { op: "ok", id: "first-pub", seq: 1 });
    const r2 = await c.request({ op: "pub", id: 42, data: "two" });
    assert.deepEqual(r2, { op: "ok", id: 42, seq: 2 });
    const r3 = await c.request({ op: "pub", id: 0, data: null });
    assert.deepEqual(r3, { op: "ok", id: 0, seq: 3 });
    const r4 = await c.request({ op: "pub", id: 1.5, data: [1, [2]] });
    assert.deepEqual(r4, { op: "ok", id: 1.5, seq: 4 });
    const r5 = await c.request({ op: "pub", id: "", data: true });
    assert.deepEqual(r5, { op: "ok", id: "", seq: 5 });
    const longId = "i".repeat(256);
    const r6 = await c.request({ op: "pub", id: longId, data: -7.25 });
    assert.deepEqual(r6, { op: "ok", id: longId, seq: 6 });
    const info = await stillWorks(c, subject);
    assert.equal(info.last, 6);
    assert.equal(info.count, 6);
  });

  test("a batch takes a contiguous range and replies seq and last", async () => {
    const subject = uniqueSubject("batch");
    const c = await open(subject);
    await c.ok({ op: "pub", data: 0 });
    const r = await c.request({ op: "pub", id: "b", batch: ["a", { b: 2 }, null, [3]] });
    assert.deepEqual(r, { op: "ok", id: "b", seq: 2, last: 5 });
    const one = await c.request({ op: "pub", id: 7, batch: ["only"] });
    assert.deepEqual(one, { op: "ok", id: 7, seq: 6, last: 6 });
    const max = await c.request({ op: "pub", id: 8, batch: Array.from({ length: 1000 }, (_, i) => i) });
    assert.deepEqual(max, { op: "ok", id: 8, seq: 7, last: 1006 });
  });

  test("payload bytes are stored and delivered verbatim", async () => {
    const subject = uniqueSubject("verbatim");
    const c = await open(subject);
    const texts = [
      '{"b": [1, 2.50],  "z" :"\\u00e9\\n"}',
      '"caf\u00e9 \ud83d\ude00 \\"q\\""',
      "1e3",
      " [ ] ",
      '{"nested":{"deep":[{"x":null}]}}',
    ];
    for (const [i, t] of texts.entries()) {
      c.send(`{"op":"pub","id":${i + 1},"data":${t}}`);
    }
    c.send(`{"op":"pub","id":"batch","batch":[${texts.join(",")}]}`);
    await c.waitFor(() => c.framesOf("ok").some((f) => f.id === "batch"), 5000, "batch reply");
    await c.ok({ op: "sub", from: "first" });
    await c.waitForMessages(10);
    const expected = [...texts, ...texts].map((t) => t.trim());
    assert.deepEqual(c.msgs.map((m) => m.raw), expected);
    assert.deepEqual(c.msgs.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const m of c.msgs) assert.ok(Number.isInteger(m.ts) && m.ts > 1.6e12, `ts ${m.ts}`);
  });

  test("errors: missing payload, both payloads, empty and oversized batch, bad msgId", async () => {
    const subject = uniqueSubject("puberr");
    const c = await open(subject);
    assertErr(await c.request({ op: "pub", id: "p1" }), "bad_request", "p1", "`data` or `batch`");
    assertErr(await c.request({ op: "pub", id: 2, data: 1, batch: [1] }), "bad_request", 2, "mutually exclusive");
    assertErr(await c.request({ op: "pub", id: 3, batch: [] }), "bad_request", 3, "must not be empty");
    assertErr(await c.request({ op: "pub", id: 4, batch: { a: 1 } }), "bad_request", 4, "array");
    assertErr(await c.request({ op: "pub", id: 5, batch: "x" }), "bad_request", 5, "array");
    assertErr(
      await c.request({ op: "pub", id: 6, batch: Array.from({ length: 1001 }, () => 1) }),
      "too_large", 6, "1000",
    );
    assertErr(await c.request({ op: "pub", id: 7, data: 1, msgId: 5 }), "bad_request", 7, "msgId");
    assertErr(await c.request({ op: "pub", id: 8, data: 1, msgId: "" }), "bad_request", 8, "msgId");
    assertErr(await c.request({ op: "pub", id: 9, data: 1, msgId: "m".repeat(257) }), "bad_request", 9, "msgId");
    const info = await stillWorks(c, subject);
    assert.equal(info.last, 0, "nothing was stored by failed publishes");
    assert.deepEqual(await c.request({ op: "pub", id: "after", data: 1 }), { op: "ok", id: "after", seq: 1 });
  });
});

describe("sub", () => {
  async function seeded(n) {
    const subject = uniqueSubject("sub");
    const p = await open(subject);
    await p.ok({ op: "pub", batch: Array.from({ length: n }, (_, i) => ({ n: i + 1 })) });
    return { subject, p };
  }

  test("from first: ok with first/last/from, then the backlog in order, then live messages", async () => {
    const { subject, p } = await seeded(5);
    const c = await open(subject);
    const r = await c.request({ op: "sub", id: "s1", from: "first" });
    assert.deepEqual(r, { op: "ok", id: "s1", first: 1, last: 5, from: 1 });
    await c.waitForMessages(5);
    const okIndex = c.frames.findIndex((f) => f.frame.id === "s1");
    const firstMsgIndex = c.frames.findIndex((f) => f.frame.op === "msg" || f.frame.op === "msgs");
    assert.ok(okIndex < firstMsgIndex, "the ok precedes the messages");
    assert.deepEqual(c.msgs.map((m) => m.data), [1, 2, 3, 4, 5].map((n) => ({ n })));
    assert.deepEqual(c.msgs.map((m) => m.seq), [1, 2, 3, 4, 5]);
    assert.ok(c.msgs.every((m) => !m.redelivered));
    await p.ok({ op: "pub", data: "live" });
    await c.waitForMessages(6);
    assert.deepEqual(c.msgs[5], { seq: 6, ts: c.msgs[5].ts, data: "live", raw: '"live"', redelivered: false });
    const single = c.frames.at(-1).frame;
    assert.equal(single.op, "msg", "a single live message comes as msg");
  });

  test("from a number, from last, from new, from 0 and from beyond the end", async () => {
    const { subject, p } = await seeded(5);
    const byNumber = await open(subject);
    assert.deepEqual(await byNumber.request({ op: "sub", id: 1, from: 3 }), { op: "ok", id: 1, first: 1, last: 5, from: 3 });
    const last = await open(subject);
    assert.deepEqual(await last.request({ op: "sub", id: 2, from: "last" }), { op: "ok", id: 2, first: 1, last: 5, from: 5 });
    const fresh = await open(subject);
    assert.deepEqual(await fresh.request({ op: "sub", id: 3, from: "new" }), { op: "ok", id: 3, first: 1, last: 5, from: 6 });
    const zero = await open(subject);
    assert.deepEqual(await zero.request({ op: "sub", id: 4, from: 0 }), { op: "ok", id: 4, first: 1, last: 5, from: 1 });
    const beyond = await open(subject);
    assert.deepEqual(await beyond.request({ op: "sub", id: 5, from: 8 }), { op: "ok", id: 5, first: 1, last: 5, from: 8 });
    const noFrom = await open(subject);
    assert.deepEqual(await noFrom.request({ op: "sub", id: 6 }), { op: "ok", id: 6, first: 1, last: 5, from: 1 });

    await byNumber.waitForMessages(3);
    await last.waitForMessages(1);
    await zero.waitForMessages(5);
    await noFrom.waitForMessages(5);
    await sleep(200);
    assert.equal(fresh.msgs.length, 0, "from new delivers nothing old");
    assert.equal(beyond.msgs.length, 0);
    await p.ok({ op: "pub", batch: ["s6", "s7", "s8"] });
    await byNumber.waitForMessages(6);
    await last.waitForMessages(4);
    await fresh.waitForMessages(3);
    await beyond.waitForMessages(1);
    await zero.waitForMessages(8);
    await noFrom.waitForMessages(8);
    assert.deepEqual(byNumber.msgs.map((m) => m.seq), [3, 4, 5, 6, 7, 8]);
    assert.deepEqual(last.msgs.map((m) => m.seq), [5, 6, 7, 8]);
    assert.deepEqual(fresh.msgs.map((m) => m.seq), [6, 7, 8]);
    assert.deepEqual(fresh.msgs.map((m) => m.data), ["s6", "s7", "s8"]);
    assert.deepEqual(beyond.msgs.map((m) => m.seq), [8]);
    assert.deepEqual(zero.msgs.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(noFrom.msgs.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
  });

  test("from last and new on an empty subject start at the next message", async () => {
    const subject = uniqueSubject("empty");
    const c = await open(subject);
    assert.deepEqual(await c.request({ op: "sub", id: "e", from: "last" }), { op: "ok", id: "e", first: 1, last: 0, from: 1 });
    await c.ok({ op: "pub", data: "x" });
    await c.waitForMessages(1);
    assert.equal(c.msgs[0].seq, 1);
  });

  test("errors: second sub, bad from, bad window, bad consumer", async () => {
    const { subject } = await seeded(2);
    const c = await open(subject);
    for (const [id, from] of [[1, "7"], [2, -1], [3, 1.5], [4, "oldest"], [5, null], [6, MAX_SEQ + 1], [7, {}], [8, true]]) {
      assertErr(await c.request({ op: "sub", id, from }), "bad_request", id, "`from`");
    }
    assertErr(await c.request({ op: "sub", id: "w0", window: 0 }), "bad_request", "w0", "`window`");
    assertErr(await c.request({ op: "sub", id: "wbig", window: 10001 }), "bad_request", "wbig", "between 1 and 10000");
    assertErr(await c.request({ op: "sub", id: "wstr", window: "5" }), "bad_request", "wstr", "`window`");
    assertErr(await c.request({ op: "sub", id: "c1", consumer: "a/b" }), "bad_request", "c1", "consumer");
    assertErr(await c.request({ op: "sub", id: "c2", consumer: "" }), "bad_request", "c2", "consumer");
    assertErr(await c.request({ op: "sub", id: "c3", consumer: "x".repeat(129) }), "bad_request", "c3", "consumer");
    assertErr(await c.request({ op: "sub", id: "c4", consumer: 12 }), "bad_request", "c4", "consumer");
    const info = await stillWorks(c, subject);
    assert.equal(info.subscribers, 0, "failed subs subscribe nothing");
    assert.equal(info.consumers, 0);
    await c.ok({ op: "sub", from: "first", window: 10000 });
    assertErr(await c.request({ op: "sub", id: "again", from: "first" }), "conflict", "again", "already");
    await c.waitForMessages(2);
    await sleep(100);
    assert.deepEqual(c.msgs.map((m) => m.seq), [1, 2], "the refused second sub delivered nothing");
  });
});

describe("ack and unsub", () => {
  test("ack with an id gets an empty ok; without an id there is no reply", async () => {
    const subject = uniqueSubject("ack");
    const c = await open(subject);
    await c.ok({ op: "pub", batch: [1, 2, 3] });
    await c.ok({ op: "sub", from: "first" });
    await c.waitForMessages(3);
    assert.deepEqual(await c.request({ op: "ack", id: "a1", seq: 2 }), { op: "ok", id: "a1" });
    assert.deepEqual(await c.request({ op: "ack", id: 77, seq: 1 }), { op: "ok", id: 77 }, "a repeat ack is harmless");
    const since = c.frames.length;
    c.send({ op: "ack", seq: 3 });
    const info = await c.ok({ op: "info", id: "after-ack" });
    assert.equal(info.subscribers, 1);
    const replies = c.frames.slice(since).filter((f) => f.frame.op === "ok" || f.frame.op === "err");
    assert.deepEqual(replies.map((f) => f.frame.id), ["after-ack"], "the id-less ack was not answered");
  });

  test("ack errors: no subscription, beyond what was delivered, bad seq", async () => {
    const subject = uniqueSubject("ackerr");
    const c = await open(subject);
    assertErr(await c.request({ op: "ack", id: "nosub", seq: 1 }), "bad_request", "nosub", "no subscription");
    await c.ok({ op: "pub", batch: [1, 2] });
    await c.ok({ op: "sub", from: "first" });
    await c.waitForMessages(2);
    assertErr(await c.request({ op: "ack", id: 5, seq: 3 }), "bad_request", 5, "cannot ack 3");
    assertErr(await c.request({ op: "ack", id: 6 }), "bad_request", 6, "missing field `seq`");
    assertErr(await c.request({ op: "ack", id: 7, seq: 0 }), "bad_request", 7, "`seq`");
    assertErr(await c.request({ op: "ack", id: 8, seq: "2" }), "bad_request", 8, "`seq`");
    assertErr(await c.request({ op: "ack", id: 9, seq: MAX_SEQ + 1 }), "bad_request", 9, "`seq`");
    await stillWorks(c, subject);
    assert.deepEqual(await c.request({ op: "ack", id: 10, seq: 2 }), { op: "ok", id: 10 });
  });

  test("unsub stops delivery; a new sub on the same connection works again", async () => {
    const subject = uniqueSubject("unsub");
    const c = await open(subject);
    const p = await open(subject);
    await c.ok({ op: "sub", from: "new" });
    await p.ok({ op: "pub", data: 1 });
    await c.waitForMessages(1);
    assert.deepEqual(await c.request({ op: "unsub", id: "u" }), { op: "ok", id: "u" });
    assert.equal((await stillWorks(c, subject)).subscribers, 0);
    await p.ok({ op: "pub", data: 2 });
    await sleep(200);
    assert.equal(c.msgs.length, 1, "nothing delivered after unsub");
    assert.deepEqual(await c.request({ op: "unsub", id: 2 }), { op: "ok", id: 2 }, "unsub without a subscription is harmless");
    await c.ok({ op: "sub", from: 2 });
    await c.waitForMessages(2);
    assert.deepEqual(c.msgs.map((m) => [m.seq, m.data]), [[1, 1], [2, 2]]);
  });
});

describe("info", () => {
  test("reports bounds, count, bytes, subscribers, connections, consumers and epoch", async () => {
    const subject = uniqueSubject("info");
    const a = await open(subject);
    const empty = await a.request({ op: "info", id: "i0" });
    assert.deepEqual(empty, {
      op: "ok", id: "i0", subject, first: 1, last: 0, count: 0, bytes: 0,
      subscribers: 0, connections: 1, consumers: 0, epoch: a.hello.epoch,
    });
    await a.ok({ op: "pub", batch: ["abc", 12345, { k: "v" }] }); // 5 + 5 + 9 bytes of JSON
    const b = await open(subject);
    await b.ok({ op: "sub", from: "first", consumer: "reporting" });
    const c = await open(subject);
    await c.ok({ op: "sub", from: "new" });
    const full = await a.request({ op: "info", id: 99 });
    assert.deepEqual(full, {
      op: "ok", id: 99, subject, first: 1, last: 3, count: 3, bytes: 19,
      subscribers: 2, connections: 3, consumers: 1, epoch: a.hello.epoch,
    });
    c.close();
    const deadline = Date.now() + 5000;
    let info;
    do {
      await sleep(50);
      info = await a.ok({ op: "info" });
    } while (info.connections !== 2 && Date.now() < deadline);
    assert.equal(info.connections, 2, "a closed connection is no longer counted");
    assert.equal(info.subscribers, 1);
    assertErr(await a.request({ op: "info", id: "x", verbose: true }), "bad_request", "x", "unknown field `verbose`");
  });
});

describe("trim", () => {
  test("deletes up to a sequence, never reuses sequences, and subscribers see only what remains", async () => {
    const subject = uniqueSubject("trim");
    const c = await open(subject);
    await c.ok({ op: "pub", batch: Array.from({ length: 10 }, (_, i) => `m${i + 1}`) });
    assert.deepEqual(await c.request({ op: "trim", id: "t", upto: 4 }), { op: "ok", id: "t", first: 5, last: 10, deleted: 4 });
    assert.deepEqual(await c.request({ op: "trim", id: 2, upto: 3 }), { op: "ok", id: 2, first: 5, last: 10, deleted: 0 });
    assert.deepEqual(await c.request({ op: "trim", id: 3, upto: 0 }), { op: "ok", id: 3, first: 5, last: 10, deleted: 0 });
    const info = await c.ok({ op: "info" });
    assert.equal(info.count, 6);
    assert.equal(info.bytes, 6 * 4 + 1, "bytes shrink with the trim ('m10' is one longer)");
    const s = await open(subject);
    assert.deepEqual(await s.request({ op: "sub", id: 1, from: 1 }), { op: "ok", id: 1, first: 5, last: 10, from: 5 });
    await s.waitForMessages(6);
    assert.deepEqual(s.msgs.map((m) => m.data), ["m5", "m6", "m7", "m8", "m9", "m10"]);
    assert.deepEqual(await c.request({ op: "trim", id: 4, upto: 1000 }), { op: "ok", id: 4, first: 11, last: 10, deleted: 6 });
    const emptied = await c.ok({ op: "info" });
    assert.deepEqual([emptied.first, emptied.last, emptied.count, emptied.bytes], [11, 10, 0, 0]);
    assert.deepEqual(await c.request({ op: "pub", id: "next", data: "m11" }), { op: "ok", id: "next", seq: 11 }, "sequences are never reused");
    await s.waitForMessages(7);
    assert.equal(s.msgs[6].seq, 11);
    const late = await open(subject);
    assert.equal(late.hello.last, 11);
    await late.ok({ op: "sub", from: "first" });
    await late.waitForMessages(1);
    await sleep(100);
    assert.deepEqual(late.msgs.map((m) => m.seq), [11]);
  });

  test("idempotency keys outlive their trimmed messages within the dedup window, and a restart", async () => {
    const subject = uniqueSubject("trimkeys");
    const c = await open(subject);
    assert.equal((await c.ok({ op: "pub", data: "one", msgId: "k1" })).seq, 1);
    assert.equal((await c.ok({ op: "pub", batch: ["two", "three"], msgId: "k2" })).seq, 2);
    assert.equal((await c.ok({ op: "pub", data: "four", msgId: "k4" })).seq, 4);
    await c.ok({ op: "trim", upto: 3 });
    const retries = async (client) => [
      await client.request({ op: "pub", id: 1, data: "one", msgId: "k1" }),
      await client.request({ op: "pub", id: 2, batch: ["two", "three"], msgId: "k2" }),
      await client.request({ op: "pub", id: 4, data: "four", msgId: "k4" }),
    ];
    const expected = [
      { op: "ok", id: 1, seq: 1, duplicate: true },
      { op: "ok", id: 2, seq: 2, last: 3, duplicate: true },
      { op: "ok", id: 4, seq: 4, duplicate: true },
    ];
    assert.deepEqual(await retries(c), expected);
    await evict(subject);
    assert.deepEqual(await retries(await open(subject)), expected);
    assert.deepEqual(await c.request({ op: "pub", id: 5, data: "five", msgId: "k5" }), { op: "ok", id: 5, seq: 5 });
  });

  test("a trim moves a lagging subscriber past the deleted messages", async () => {
    const subject = uniqueSubject("trimlag");
    const c = await open(subject);
    await c.ok({ op: "pub", batch: [1, 2, 3, 4, 5, 6] });
    const s = await open(subject);
    await s.ok({ op: "sub", from: "first", window: 2 });
    await s.waitForMessages(2);
    await c.ok({ op: "trim", upto: 4 });
    await s.waitForMessages(4);
    await sleep(100);
    assert.deepEqual(s.msgs.map((m) => m.seq), [1, 2, 5, 6]);
  });

  test("errors: missing, negative, string and too large upto; MAX_SEQ itself is accepted", async () => {
    const subject = uniqueSubject("trimerr");
    const c = await open(subject);
    assertErr(await c.request({ op: "trim", id: 1 }), "bad_request", 1, "`upto`");
    assertErr(await c.request({ op: "trim", id: 2, upto: -1 }), "bad_request", 2, "`upto`");
    assertErr(await c.request({ op: "trim", id: 3, upto: "5" }), "bad_request", 3, "`upto`");
    assertErr(await c.request({ op: "trim", id: 4, upto: MAX_SEQ + 1 }), "bad_request", 4, String(MAX_SEQ));
    assertErr(await c.request({ op: "trim", id: 5, upto: 1e300 }), "bad_request", 5, "`upto`");
    await c.ok({ op: "pub", batch: [1, 2] });
    assert.deepEqual(await c.request({ op: "trim", id: 6, upto: MAX_SEQ }), { op: "ok", id: 6, first: 3, last: 2, deleted: 2 });
    await stillWorks(c, subject);
  });
});

describe("state", () => {
  test("get, put, compare-and-set and conflict", async () => {
    const subject = uniqueSubject("state");
    const c = await open(subject);
    assert.deepEqual(await c.request({ op: "state.get", id: "g0" }), { op: "ok", id: "g0", state: null, version: 0 });
    assert.deepEqual(await c.request({ op: "state.put", id: "p1", state: { cursor: 5, tags: ["a"] } }), { op: "ok", id: "p1", version: 1 });
    assert.deepEqual(await c.request({ op: "state.get", id: 1 }), { op: "ok", id: 1, state: { cursor: 5, tags: ["a"] }, version: 1 });
    assert.deepEqual(await c.request({ op: "state.put", id: 2, state: "second", version: 1 }), { op: "ok", id: 2, version: 2 });
    assertErr(await c.request({ op: "state.put", id: 3, state: "stale", version: 1 }), "conflict", 3, "version is 2");
    assertErr(await c.request({ op: "state.put", id: "v0", state: "stale", version: 0 }), "conflict", "v0", "version is 2");
    assert.deepEqual(await c.request({ op: "state.get", id: 4 }), { op: "ok", id: 4, state: "second", version: 2 });
    assert.deepEqual(await c.request({ op: "state.put", id: 5, state: [1, 2] }), { op: "ok", id: 5, version: 3 }, "no version = unconditional");
    assert.deepEqual(await c.request({ op: "state.put", id: 6, state: null, version: 3 }), { op: "ok", id: 6, version: 4 });
    const other = await open(subject);
    assert.deepEqual(await other.request({ op: "state.get", id: "o" }), { op: "ok", id: "o", state: null, version: 4 });
    const since = c.frames.length;
    const document = '{"k" : [1,  2.50], "big": 123456789012345678901234567890, "s": "\\u00e9\u00e9"}';
    c.send(`{"op":"state.put","id":"raw","state":${document}}`);
    assert.deepEqual(await c.nextFrame((f) => f.id === "raw", { since }), { op: "ok", id: "raw", version: 5 });
    const get = c.frames.length;
    c.send('{"op":"state.get","id":"rawget"}');
    const reply = await c.nextFrame((f) => f.id === "rawget", { since: get });
    assert.equal(reply.version, 5);
    const text = c.frames.at(-1).text;
    const at = text.indexOf('"state":') + '"state":'.length;
    assert.equal(text.slice(at, scanJsonValue(text, at)), document, "state is returned verbatim (no number rounding)");
  });

  test("errors: missing state, bad version, oversized state, extra fields", async () => {
    const subject = uniqueSubject("stateerr");
    const c = await open(subject);
    assertErr(await c.request({ op: "state.put", id: 1, version: 0 }), "bad_request", 1, "`state`");
    assertErr(await c.request({ op: "state.put", id: 2, state: 1, version: -1 }), "bad_request", 2, "`version`");
    assertErr(await c.request({ op: "state.put", id: 3, state: 1, version: "1" }), "bad_request", 3, "`version`");
    assertErr(await c.request({ op: "state.put", id: 4, state: "x".repeat(64 * 1024) }), "too_large", 4, "65536");
    assertErr(await c.request({ op: "state.get", id: 5, version: 1 }), "bad_request", 5, "unknown field `version`");
    assert.deepEqual(await c.request({ op: "state.get", id: 6 }), { op: "ok", id: 6, state: null, version: 0 }, "nothing was written");
    assert.deepEqual(await c.request({ op: "state.put", id: 7, state: "x".repeat(64 * 1024 - 2) }), { op: "ok", id: 7, version: 1 }, "exactly the limit is accepted");
  });
});

describe("bad input", () => {
  test("malformed JSON, non-objects, unknown ops and fields, wrong types: err, and the connection still works", async () => {
    const subject = uniqueSubject("bad");
    const c = await open(subject);
    const cases = [
      ["{", null, "bad_request", "malformed JSON"],
      ["not json", null, "bad_request", "malformed JSON"],
      ['{"op":"pub","data":1,}', null, "bad_request", "malformed JSON"],
      ["", null, "bad_request", null],
      ["[1,2]", null, "bad_request", "JSON object"],
      ["42", null, "bad_request", "JSON object"],
      ['"pub"', null, "bad_request", "JSON object"],
      ["null", null, "bad_request", "JSON object"],
      ['{"id":"noop"}', "noop", "bad_request", "missing field `op`"],
      ['{"op":7,"id":8}', 8, "bad_request", "`op` must be a string"],
      ['{"op":"publish","id":"u1"}', "u1", "bad_request", 'unknown op "publish"'],
      ['{"op":"PUB","id":9,"data":1}', 9, "bad_request", "unknown op"],
      ['{"op":"pub","id":"f1","data":1,"extra":true}', "f1", "bad_request", "unknown field `extra`"],
      ['{"op":"sub","id":"f2","fron":1}', "f2", "bad_request", "unknown field `fron`"],
      ['{"op":"ack","id":"f3","seq":1,"ack":1}', "f3", "bad_request", "unknown field `ack`"],
      ['{"op":"info","id":null}', null, "bad_request", "id must be a string or a number"],
      ['{"op":"info","id":[1]}', null, "bad_request", "id must be a string or a number"],
      ['{"op":"info","id":true}', null, "bad_request", "id must be a string or a number"],
      ['{"op":"info","id":{"a":1}}', null, "bad_request", "id must be a string or a number"],
      [`{"op":"info","id":"${"i".repeat(257)}"}`, null, "bad_request", "at most 256"],
      ['{"op":"sub","id":"t1","window":"10"}', "t1", "bad_request", "`window`"],
      ['{"op":"trim","id":"t2","upto":true}', "t2", "bad_request", "`upto`"],
      ['{"op":"pub","id":"t3","data":1,"msgId":["x"]}', "t3", "bad_request", "`msgId`"],
    ];
    for (const [text, id, code, part] of cases) {
      const reply = await rawErr(c, text);
      assertErr(reply, code, id, part);
    }
    const info = await stillWorks(c, subject);
    assert.equal(info.last, 0, "no bad frame stored anything");
    assert.equal(c.closed, null);
    // Deep nesting (1000 levels) is refused (MAX_JSON_DEPTH; strict-input.test.mjs has the rest).
    const nested = `${"[".repeat(1000)}${"]".repeat(1000)}`;
    const since = c.frames.length;
    c.send(`{"op":"pub","id":"deep","data":${nested}}`);
    const deep = await c.nextFrame((f) => f.id === "deep", { since });
    assertErr(deep, "bad_request", "deep", "nested more than 64 deep");
    assert.equal((await stillWorks(c, subject)).last, 0);
  });

  test("a binary frame is refused with an err and the connection still works", async () => {
    const subject = uniqueSubject("binary");
    const c = await open(subject);
    for (const bin of [new Uint8Array([1, 2, 3]), new TextEncoder().encode('{"op":"info","id":1}')]) {
      const reply = await rawErr(c, bin);
      assertErr(reply, "bad_request", null, "binary");
    }
    assert.deepEqual(await c.request({ op: "pub", id: "ok-after-binary", data: 1 }), { op: "ok", id: "ok-after-binary", seq: 1 });
  });

  test("a frame larger than MAX_FRAME_BYTES (1 MiB) is refused as too_large and the connection still works", async () => {
    const subject = uniqueSubject("big");
    const c = await open(subject);
    const data = "x".repeat(1024 * 1024);
    const reply = await rawErr(c, JSON.stringify({ op: "pub", id: "big", data }));
    assertErr(reply, "too_large", null, "1048576");
    // Just under the limit is accepted.
    const fits = JSON.stringify({ op: "pub", id: "fits", data: "" });
    const pad = 1024 * 1024 - fits.length;
    const justFits = await c.request({ op: "pub", id: "fits", data: "y".repeat(pad) });
    assert.deepEqual(justFits, { op: "ok", id: "fits", seq: 1 });
    const info = await stillWorks(c, subject);
    assert.equal(info.last, 1);
    assert.equal(info.bytes, pad + 2);
    await c.ok({ op: "sub", from: "first" });
    await c.waitForMessages(1, 10_000);
    assert.equal(c.msgs[0].data.length, pad);
  });

  test("sequences stay within 2^53-1: from and ack beyond it are refused", async () => {
    const subject = uniqueSubject("maxseq");
    const c = await open(subject);
    assertErr(await c.request({ op: "sub", id: "m1", from: 9007199254740992 }), "bad_request", "m1", String(MAX_SEQ));
    const since = c.frames.length;
    c.send('{"op":"sub","id":"m2","from":18446744073709551616}');
    assertErr(await c.nextFrame((f) => f.op === "err", { since }), "bad_request", "m2", "`from`");
    assert.deepEqual(await c.request({ op: "sub", id: "m3", from: MAX_SEQ }), { op: "ok", id: "m3", first: 1, last: 0, from: MAX_SEQ });
    await stillWorks(c, subject);
  });
});
