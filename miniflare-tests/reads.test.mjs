// Reads by sequence and by time on real workerd: `get` and GET …/messages/{seq|last} (found,
// trimmed, not written yet, bad references), and starts by time (`sub` with
// `from: {"time": ms}`, `?fromTime=`) around equal timestamps (a batch shares one) and trims.
//
// Run: bash scripts/build-worker.sh && node_modules/.bin/node --test miniflare-tests/reads.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import { uniqueSubject, until } from "./ws-client.mjs";
import { httpCall } from "./http-client.mjs";
import { serverPerFile } from "./harness.mjs";

const harness = serverPerFile();
const { open } = harness;
const call = (method, path, options) => httpCall(harness.server, method, path, options);

/** Checks a `not_found` for message `what` on both surfaces: the get op and HTTP. */
async function assertNotFound(client, subject, what, { first, last, message }) {
  const reply = await client.request({ op: "get", seq: what });
  assert.deepEqual(
    [reply.op, reply.code, reply.message, reply.first, reply.last],
    ["err", "not_found", message, first, last],
    `get ${what}`,
  );
  const res = await call("GET", `/v1/stream/${subject}/messages/${what}`);
  assert.equal(res.status, 404, res.text);
  assert.deepEqual(res.json, { error: { code: "not_found", message, first, last } });
}

test("one message by sequence: found, trimmed, not written yet, and the last one", async () => {
  const s = uniqueSubject("get");
  const c = await open(s, "reader");
  await assertNotFound(c, s, "last", { first: 1, last: 0, message: "the subject has no messages yet" });
  await assertNotFound(c, s, 1, { first: 1, last: 0, message: "message 1 does not exist yet; the subject holds no message (last is 0)" });

  const texts = ['{"n": 1}', '"two"', "3.50", "[4]", "null"];
  for (const [i, text] of texts.entries()) {
    c.send(`{"op":"pub","id":"p${i}","data":${text}}`);
    await c.nextFrame((f) => f.id === `p${i}`, { since: 0 });
  }
  for (const seq of [1, 3, 5]) {
    const reply = await c.request({ op: "get", id: `g${seq}`, seq });
    assert.deepEqual([reply.op, reply.id, reply.seq], ["ok", `g${seq}`, seq]);
    assert.ok(c.frames.at(-1).text.endsWith(`"data":${texts[seq - 1]}}`), "the data goes out byte for byte");
    const res = await call("GET", `/v1/stream/${s}/messages/${seq}`);
    assert.equal(res.status, 200);
    assert.equal(res.text, `{"seq":${seq},"ts":${reply.ts},"data":${texts[seq - 1]}}`);
  }
  const last = await call("GET", `/v1/stream/${s}/messages/last`);
  assert.deepEqual([last.status, last.json.seq, last.json.data], [200, 5, null]);
  assert.deepEqual([(await c.request({ op: "get", seq: "last" })).seq], [5]);

  await c.ok({ op: "trim", upto: 2 });
  await assertNotFound(c, s, 1, { first: 3, last: 5, message: "message 1 was trimmed; the subject holds 3 to 5" });
  await assertNotFound(c, s, 2, { first: 3, last: 5, message: "message 2 was trimmed; the subject holds 3 to 5" });
  await assertNotFound(c, s, 6, { first: 3, last: 5, message: "message 6 does not exist yet; the subject holds 3 to 5 (last is 5)" });
  await assertNotFound(c, s, 9007199254740991, { first: 3, last: 5, message: "message 9007199254740991 does not exist yet; the subject holds 3 to 5 (last is 5)" });
  assert.equal((await c.request({ op: "get", seq: 3 })).data, 3.5);

  await c.ok({ op: "trim", upto: 5 });
  await assertNotFound(c, s, "last", { first: 6, last: 5, message: "every message up to 5 was trimmed; the subject holds no message" });
  await assertNotFound(c, s, 5, { first: 6, last: 5, message: "message 5 was trimmed; the subject holds no message" });
  await c.ok({ op: "pub", data: "six" });
  assert.equal((await call("GET", `/v1/stream/${s}/messages/last`)).json.data, "six");
});

test("bad message references are refused with bad_request", async () => {
  const s = uniqueSubject("get-bad");
  const c = await open(s, "reader");
  const refusal = '`seq` must be an integer between 1 and 9007199254740991, or "last"';
  for (const seq of ["0", "-1", "+1", "abc", "Last", "1.5", "9007199254740992", "%20"]) {
    const res = await call("GET", `/v1/stream/${s}/messages/${seq}`);
    assert.deepEqual([res.status, res.json?.error?.message], [400, refusal], seq);
  }
  for (const seq of [0, "5", "first", null, 1.5]) {
    const reply = await c.request({ op: "get", id: "x", seq });
    assert.deepEqual([reply.op, reply.id, reply.code, reply.message], ["err", "x", "bad_request", refusal], String(seq));
  }
  const extra = await call("GET", `/v1/stream/${s}/messages/1?from=1`);
  assert.deepEqual([extra.status, extra.json.error.message], [400, "unknown query parameter `from`"]);
  const other = await call("GET", `/v1/stream/${s}/messages/1/2`);
  assert.equal(other.status, 404, "deeper paths are no route");
  const withKey = await call("GET", `/v1/stream/${s}/messages/1?apiKey=test-key`);
  assert.equal(withKey.status, 404, "the key may be in the query; the message is not there yet");
});

/** Where a read from time `ms` must start: the first retained message at or after it, else
 *  the next one published. */
function expectedStart(messages, ms, last) {
  return messages.find((m) => m.ts >= ms)?.seq ?? last + 1;
}

/** Checks `?fromTime=` and `sub` with `from: {time}` for each time against the stored messages. */
async function checkTimeSeeks(subject, times, what) {
  const page = await call("GET", `/v1/stream/${subject}/messages?limit=1000`);
  const { messages, last } = page.json;
  for (const ms of times) {
    const want = expectedStart(messages, ms, last);
    const read = await call("GET", `/v1/stream/${subject}/messages?fromTime=${ms}&limit=1000`);
    assert.equal(read.status, 200, read.text);
    assert.deepEqual(read.json.messages.map((m) => m.seq), messages.filter((m) => m.seq >= want).map((m) => m.seq), `${what}: fromTime=${ms}`);
    assert.equal(read.json.next, last + 1);
    const sub = await open(subject, `sub-${ms}`);
    const ok = await sub.ok({ op: "sub", from: { time: ms } });
    assert.equal(ok.from, want, `${what}: sub from time ${ms}`);
    const count = last + 1 - want;
    if (count > 0) {
      await sub.waitForMessages(count);
      assert.equal(sub.msgs[0].seq, want);
      assert.ok(sub.msgs[0].ts >= ms && (want === messages[0].seq || messages.find((m) => m.seq === want - 1).ts < ms));
    }
    sub.close();
  }
}

test("starts by time seek the first message at or after it, around equal timestamps and trims", async () => {
  const s = uniqueSubject("time");
  const c = await open(s, "writer");
  // Groups with distinct timestamps (a batch's messages share one), enough of them for the
  // binary search over the sequence to halve several times.
  const groups = [];
  for (const batch of [["a1", "a2", "a3"], ["b1"], ["c1", "c2"], ["d1", "d2", "d3", "d4", "d5"], ["e1"], ["f1", "f2", "f3", "f4"], ["g1"]]) {
    if (groups.length > 0) {
      const previous = groups.at(-1).ts;
      await until(() => Date.now() > previous + 2, 5_000, "the clock to move on");
    }
    const reply = await c.ok({ op: "pub", batch });
    const got = await c.request({ op: "get", seq: reply.seq });
    groups.push({ first: reply.seq, last: reply.last, ts: got.ts });
  }
  assert.ok(groups.every((g, i) => i === 0 || groups[i - 1].ts < g.ts), JSON.stringify(groups));
  const page = await call("GET", `/v1/stream/${s}/messages`);
  for (const g of groups) {
    for (let seq = g.first; seq <= g.last; seq++) assert.equal(page.json.messages[seq - 1].ts, g.ts, "a batch shares its timestamp");
  }
  const times = [0, ...groups.flatMap((g) => [g.ts - 1, g.ts, g.ts + 1]), Date.now() + 3_600_000];
  assert.equal(expectedStart(page.json.messages, groups[1].ts, groups.at(-1).last), 4, "the expectation itself: the first of the group");
  await checkTimeSeeks(s, times, "all retained");

  // Trim into the first group: its time now finds its first retained message.
  await c.ok({ op: "trim", upto: 2 });
  await checkTimeSeeks(s, times, "trimmed to 3");
  assert.equal((await call("GET", `/v1/stream/${s}/messages?fromTime=${groups[0].ts}`)).json.messages[0].seq, 3);
  // Trim past the second group.
  await c.ok({ op: "trim", upto: 4 });
  await checkTimeSeeks(s, times, "trimmed to 5");
  assert.equal((await call("GET", `/v1/stream/${s}/messages?fromTime=0`)).json.messages[0].seq, 5);
});

test("a time after every message starts at the next one published; consumers take the start", async () => {
  const s = uniqueSubject("time-future");
  const c = await open(s, "writer");
  await c.ok({ op: "pub", batch: [1, 2, 3] });
  const future = Date.now() + 3_600_000;
  const sub = await open(s, "subscriber");
  assert.deepEqual(await sub.request({ op: "sub", id: "s", from: { time: future }, consumer: "audit" }), { op: "ok", id: "s", first: 1, last: 3, from: 4 });
  const read = await call("GET", `/v1/stream/${s}/messages?fromTime=${future}`);
  assert.deepEqual(read.json, { messages: [], next: 4, last: 3 });
  await c.ok({ op: "pub", data: "next" });
  await sub.waitForMessages(1);
  assert.deepEqual([sub.msgs[0].seq, sub.msgs[0].data], [4, "next"]);
  await sub.ok({ op: "ack", seq: 4 });
  sub.close();
  // The consumer's position was set by the start and moved by the ack.
  const resume = await open(s, "resume");
  assert.equal((await resume.ok({ op: "sub", consumer: "audit" })).from, 5);
  // A time start resets a consumer like any explicit start.
  resume.close();
  const reset = await open(s, "reset");
  assert.equal((await reset.ok({ op: "sub", consumer: "audit", from: { time: 0 } })).from, 1);
});

test("bad time starts are refused", async () => {
  const s = uniqueSubject("time-bad");
  const c = await open(s, "reader");
  for (const from of [{ time: -1 }, { time: "1" }, { time: 1.5 }, {}, { time: 1, seq: 2 }, { at: 1 }]) {
    const reply = await c.request({ op: "sub", id: "t", from });
    assert.deepEqual([reply.op, reply.id, reply.code], ["err", "t", "bad_request"], JSON.stringify(from));
  }
  for (const query of ["fromTime=-1", "fromTime=x", "fromTime=1&from=1", "fromTime=1&fromTime=2"]) {
    const res = await call("GET", `/v1/stream/${s}/messages?${query}`);
    assert.equal(res.status, 400, query);
  }
  assert.equal((await c.ok({ op: "sub", from: { time: 0 } })).from, 1, "the connection is still usable");
});
