// Retention on real workerd: the message-count and byte limits enforced on publish
// (RETENTION_MAX_MESSAGES=10, RETENTION_MAX_BYTES=2000), the age limit enforced by the alarm
// with no publish to trigger it (RETENTION_MAX_AGE_MS=1500), and subscribers moved past what
// retention deleted. The limits server also caps connections per subject (MAX_CONNECTIONS=3).

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, TEST_KEY } from "./server.mjs";
import { connect, uniqueSubject, sleep, until, rawUpgrade } from "./ws-client.mjs";

let limits;
let aging;
const clients = [];
async function open(server, subject, label) {
  const c = await connect(server, subject, { label });
  clients.push(c);
  return c;
}

const MAX_AGE_MS = 1500;
// workerd and this process read the same clock, each rounded to the millisecond.
const CLOCK_SLACK_MS = 5;
// How long an expiry may take on a loaded machine before the test calls it lost (it takes
// MAX_AGE_MS plus a few milliseconds when the alarm works).
const EXPIRY_BOUND_MS = 30_000;

before(async () => {
  [limits, aging] = await Promise.all([
    startServer({ vars: { RETENTION_MAX_MESSAGES: "10", RETENTION_MAX_BYTES: "2000", MAX_CONNECTIONS: "3" } }),
    startServer({ vars: { RETENTION_MAX_AGE_MS: String(MAX_AGE_MS) } }),
  ]);
});
after(async () => {
  for (const c of clients) c.close();
  await Promise.all([limits?.stop(), aging?.stop()]);
});

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const bounds = (info) => ({ first: info.first, last: info.last, count: info.count, bytes: info.bytes });

describe("count and byte limits (on publish)", () => {
  test("at most RETENTION_MAX_MESSAGES are kept, oldest dropped first, seqs never reused", async () => {
    const subject = uniqueSubject("count");
    const c = await open(limits, subject);
    for (let i = 1; i <= 12; i++) await c.ok({ op: "pub", data: i % 10 });
    assert.deepEqual(bounds(await c.ok({ op: "info" })), { first: 3, last: 12, count: 10, bytes: 10 });
    const r = await c.ok({ op: "pub", batch: range(13, 37).map((n) => n % 10) });
    assert.deepEqual([r.seq, r.last], [13, 37]);
    assert.deepEqual(bounds(await c.ok({ op: "info" })), { first: 28, last: 37, count: 10, bytes: 10 });
    const s = await open(limits, subject);
    assert.deepEqual(await s.request({ op: "sub", id: 1, from: 1 }), { op: "ok", id: 1, first: 28, last: 37, from: 28 });
    await s.waitForMessages(10);
    await sleep(100);
    assert.deepEqual(s.msgs.map((m) => m.seq), range(28, 37));
    assert.deepEqual(s.msgs.map((m) => m.data), range(28, 37).map((n) => n % 10));
  });

  test("at most RETENTION_MAX_BYTES of data are kept", async () => {
    const subject = uniqueSubject("bytes");
    const c = await open(limits, subject);
    const payload = (n) => `${n}`.padEnd(298, "x"); // 300 bytes of JSON with the quotes
    for (let i = 1; i <= 8; i++) {
      await c.ok({ op: "pub", data: payload(i) });
      const info = await c.ok({ op: "info" });
      assert.ok(info.bytes <= 2000, `bytes ${info.bytes} after publish ${i}`);
    }
    assert.deepEqual(bounds(await c.ok({ op: "info" })), { first: 3, last: 8, count: 6, bytes: 1800 });
    await c.ok({ op: "pub", data: "y".repeat(998) }); // 1000 bytes: needs 3 more of the old ones gone
    assert.deepEqual(bounds(await c.ok({ op: "info" })), { first: 6, last: 9, count: 4, bytes: 1900 });
    const s = await open(limits, subject);
    await s.ok({ op: "sub", from: "first" });
    await s.waitForMessages(4);
    assert.deepEqual(s.msgs.map((m) => m.seq), [6, 7, 8, 9]);
    assert.equal(s.msgs[0].data, payload(6));
  });

  test("a lagging subscriber moves past messages retention deleted", async () => {
    const subject = uniqueSubject("lag");
    const p = await open(limits, subject, "pub");
    await p.ok({ op: "pub", batch: range(1, 10) });
    const s = await open(limits, subject, "sub");
    await s.ok({ op: "sub", from: "first", window: 2 });
    await s.waitForMessages(2);
    await p.ok({ op: "pub", batch: range(11, 20) }); // retention drops 1..10
    await s.waitForMessages(4);
    await sleep(150);
    assert.deepEqual(s.msgs.map((m) => m.seq), [1, 2, 11, 12], "3..10 were deleted unacked; delivery goes on from 11");
    s.send({ op: "ack", seq: 12 });
    await s.waitForMessages(6);
    assert.deepEqual(s.msgs.map((m) => m.seq), [1, 2, 11, 12, 13, 14]);
  });

  test("trim works alongside the limits", async () => {
    const subject = uniqueSubject("trimlimits");
    const c = await open(limits, subject);
    await c.ok({ op: "pub", batch: range(1, 15) });
    assert.deepEqual(await c.request({ op: "trim", id: "t", upto: 8 }), { op: "ok", id: "t", first: 9, last: 15, deleted: 3 });
    assert.deepEqual(bounds(await c.ok({ op: "info" })), { first: 9, last: 15, count: 7, bytes: 13 });
  });
});

describe("age limit (alarm-driven)", () => {
  test("messages older than RETENTION_MAX_AGE_MS are deleted without any publish", async () => {
    const subject = uniqueSubject("age");
    const c = await open(aging, subject);
    // Taken before each publish: the server stamps the messages no earlier than these.
    const t0 = Date.now();
    await c.ok({ op: "pub", batch: ["a1", "a2"] });
    await sleep(700);
    const t1 = Date.now();
    await c.ok({ op: "pub", data: "b" });
    // Only info requests from here on: the alarm must do the deleting. Every observation checks
    // that nothing went before its age (a reply that shows a message gone was received after
    // the deletion); the upper bound only guards against a hang.
    const allGone = await until(async () => {
      const info = await c.ok({ op: "info" });
      const receivedAt = Date.now();
      if (info.first > 2) assert.ok(receivedAt - t0 >= MAX_AGE_MS - CLOCK_SLACK_MS, `batch deleted after ${receivedAt - t0} ms`);
      if (info.first > 3) assert.ok(receivedAt - t1 >= MAX_AGE_MS - CLOCK_SLACK_MS, `"b" deleted after ${receivedAt - t1} ms`);
      return info.count === 0 && info;
    }, EXPIRY_BOUND_MS, "every message to expire", 50);
    assert.deepEqual(bounds(allGone), { first: 4, last: 3, count: 0, bytes: 0 });
    assert.deepEqual(await c.request({ op: "pub", id: "n", data: "new" }), { op: "ok", id: "n", seq: 4 }, "seqs continue after an age purge");
    const s = await open(aging, subject);
    assert.deepEqual(await s.request({ op: "sub", id: 1, from: "first" }), { op: "ok", id: 1, first: 4, last: 4, from: 4 });
    await s.waitForMessages(1);
    assert.equal(s.msgs[0].data, "new");
  });
});

describe("age limit with another alarm already pending", () => {
  test("a message published while a later alarm is pending still expires on time", async () => {
    // The first publish (with a msgId) leaves an alarm pending for forgetting the key (the
    // dedup window, 120 s by default) once its own age expiry has run.
    const subject = uniqueSubject("agepending");
    const c = await open(aging, subject);
    await c.ok({ op: "pub", data: "first", msgId: "keep-an-alarm-pending" });
    await until(async () => (await c.ok({ op: "info" })).count === 0, EXPIRY_BOUND_MS, "the first message to expire", 50);
    // Now publish again: nothing but the alarm can delete it, and it must (before the dedup
    // window's alarm, 120 s away).
    const t = Date.now();
    const r = await c.ok({ op: "pub", data: "second" });
    assert.equal(r.seq, 2);
    await until(async () => (await c.ok({ op: "info" })).count === 0, EXPIRY_BOUND_MS, "the second message to expire (an alarm for a later time was already set)", 50);
    assert.ok(Date.now() - t >= MAX_AGE_MS - CLOCK_SLACK_MS);
  });
});

describe("age limit on many subjects", () => {
  test("every subject's alarm fires until its messages are gone (none is lost)", async () => {
    // An alarm handler that ran in its deadline's own millisecond used to find the message not
    // yet expired and re-arm for that same instant, which workerd drops: the message then lived
    // forever. Forty subjects make such a coincidence all but certain to show.
    const subjects = range(1, 40).map((n) => uniqueSubject(`agemany${n}`));
    const headers = { authorization: `Bearer ${TEST_KEY}` };
    const t0 = Date.now();
    for (const subject of subjects) {
      const res = await fetch(`${aging.url}/v1/stream/${subject}`, { method: "POST", headers, body: '"x"' });
      assert.equal(res.status, 201);
    }
    const remaining = new Set(subjects);
    await until(async () => {
      for (const subject of [...remaining]) {
        const info = await (await fetch(`${aging.url}/v1/stream/${subject}`, { headers })).json();
        if (info.count === 0) {
          assert.ok(Date.now() - t0 >= MAX_AGE_MS - CLOCK_SLACK_MS, `${subject} emptied after ${Date.now() - t0} ms`);
          remaining.delete(subject);
        }
      }
      return remaining.size === 0;
    }, EXPIRY_BOUND_MS, "every subject to expire", 100).catch((e) => {
      throw new Error(`${e.message}; never expired: ${[...remaining].join(", ")}`);
    });
  });
});

describe("connection limit", () => {
  test("MAX_CONNECTIONS per subject: the next upgrade gets 429 JSON until one closes", async () => {
    const subject = uniqueSubject("conns");
    const held = [await open(limits, subject, "c1"), await open(limits, subject, "c2"), await open(limits, subject, "c3")];
    const refused = await rawUpgrade(`${limits.url}/v1/stream/${subject}?apiKey=${TEST_KEY}`);
    assert.equal(refused.status, 429, refused.body);
    const body = JSON.parse(refused.body);
    assert.equal(body.error.code, "rate_limited");
    assert.match(body.error.message, /3 connections/);
    const elsewhere = await rawUpgrade(`${limits.url}/v1/stream/${subject}-other?apiKey=${TEST_KEY}`);
    assert.equal(elsewhere.status, 101, "the limit is per subject");
    held[0].close();
    await held[0].waitClosed();
    await until(async () => (await held[1].ok({ op: "info" })).connections === 2, 5000, "the closed connection to be released");
    const again = await open(limits, subject, "c4");
    assert.equal(again.hello.subject, subject);
  });
});
