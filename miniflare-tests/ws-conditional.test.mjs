// Conditional publish on real workerd: `expectLastSeq` on WebSocket `pub` (single and batch) and
// `Expected-Last-Seq` / `Nats-Expected-Last-Sequence` over HTTP. Writers racing on the same
// expectation: exactly one wins each round and the loser learns the real last sequence; a
// refused publish stores nothing; a retry (same msgId) of a conditional publish that was stored
// answers its original sequence, even after the subject moved on.
//
// Run: bash scripts/build-worker.sh && node_modules/.bin/node --test miniflare-tests/ws-conditional.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import { uniqueSubject } from "./ws-client.mjs";
import { httpCall } from "./http-client.mjs";
import { serverPerFile } from "./harness.mjs";

const harness = serverPerFile();
const { open } = harness;
const call = (method, path, options) => httpCall(harness.server, method, path, options);

/** A publish over HTTP with an expected last sequence (JSON body). */
const httpPublish = (subject, data, headers = {}, query = "") =>
  call("POST", `/v1/stream/${subject}${query}`, { body: JSON.stringify(data), headers });

/** Sends a frame as written (to send what JSON.stringify would not) and waits for the reply to `id`. */
async function rawRequest(client, id, text) {
  const since = client.frames.length;
  client.send(text);
  return client.nextFrame((f) => f.id === id, { since });
}

function assertConflict(reply, lastSeq, what) {
  assert.equal(reply.op, "err", `${what}: ${JSON.stringify(reply)}`);
  assert.equal(reply.code, "conflict", what);
  assert.equal(reply.lastSeq, lastSeq, `${what}: lastSeq`);
  assert.match(reply.message, /nothing was stored/, what);
}

function assertHttpConflict(res, lastSeq, what) {
  assert.equal(res.status, 409, `${what}: ${res.text}`);
  assert.equal(res.json.error.code, "conflict", what);
  assert.equal(res.json.error.lastSeq, lastSeq, `${what}: lastSeq`);
}

test("expectLastSeq 0 creates a subject only once, on every surface", async () => {
  const s = uniqueSubject("create");
  const c = await open(s, "creator");
  assert.deepEqual(await c.request({ op: "pub", id: "c1", data: { created: 1 }, expectLastSeq: 0 }), { op: "ok", id: "c1", seq: 1 });
  assertConflict(await c.request({ op: "pub", id: "c2", data: { created: 2 }, expectLastSeq: 0 }), 1, "a second create over WebSocket");
  assertConflict(await c.request({ op: "pub", id: "c3", batch: [1, 2], expectLastSeq: 0 }), 1, "a create by batch");
  assertHttpConflict(await httpPublish(s, { created: 3 }, { "expected-last-seq": "0" }), 1, "a create over HTTP");
  assertHttpConflict(await httpPublish(s, { created: 4 }, { "nats-expected-last-sequence": "0" }), 1, "JetStream's header");
  const info = await c.ok({ op: "info" });
  assert.deepEqual([info.first, info.last, info.count], [1, 1, 1], "the refusals stored nothing");

  // Over HTTP, on another subject: 201 the first time, 409 after.
  const h = uniqueSubject("create-http");
  const first = await httpPublish(h, { created: 1 }, { "expected-last-seq": "0" });
  assert.deepEqual([first.status, first.json], [201, { seq: 1 }]);
  assertHttpConflict(await httpPublish(h, [1, 2], { "expected-last-seq": "0" }, "?batch=1"), 1, "an HTTP batch create");
});

test("expectations are checked against the last sequence, trims and batches included", async () => {
  const s = uniqueSubject("expect");
  const c = await open(s, "writer");
  assert.deepEqual(await c.request({ op: "pub", id: 1, batch: ["a", "b", "c"], expectLastSeq: 0 }), { op: "ok", id: 1, seq: 1, last: 3 });
  assertConflict(await c.request({ op: "pub", id: 2, data: "d", expectLastSeq: 2 }), 3, "behind");
  assertConflict(await c.request({ op: "pub", id: 3, data: "d", expectLastSeq: 9 }), 3, "ahead");
  assert.deepEqual(await c.request({ op: "pub", id: 4, data: "d", expectLastSeq: 3 }), { op: "ok", id: 4, seq: 4 });
  // Trimming everything keeps `last`: the expectation is about the sequence, not the count.
  await c.ok({ op: "trim", upto: 4 });
  assertConflict(await c.request({ op: "pub", id: 5, data: "e", expectLastSeq: 0 }), 4, "an emptied subject is not new");
  const res = await httpPublish(s, ["e", "f"], { "Expected-Last-Seq": "4", "Nats-Expected-Last-Sequence": "4" }, "?batch=1");
  assert.deepEqual([res.status, res.json], [201, { seq: 5, last: 6 }]);
  assertHttpConflict(await httpPublish(s, "g", { "nats-expected-last-sequence": "5" }), 6, "JetStream's header, behind");
  const info = await c.ok({ op: "info" });
  assert.deepEqual([info.first, info.last, info.count], [5, 6, 2]);
});

test("a refused publish delivers nothing; an accepted one reaches subscribers", async () => {
  const s = uniqueSubject("deliver");
  const sub = await open(s, "subscriber");
  await sub.ok({ op: "sub", from: "first" });
  const c = await open(s, "writer");
  await c.ok({ op: "pub", data: 1, expectLastSeq: 0 });
  assertConflict(await c.request({ op: "pub", data: "refused", expectLastSeq: 0 }), 1, "refused");
  await c.ok({ op: "pub", data: 2, expectLastSeq: 1 });
  await sub.waitForMessages(2);
  assert.deepEqual(sub.msgs.map((m) => [m.seq, m.data]), [[1, 1], [2, 2]]);
  // An ack round trip after the last publish: anything the refusal had sent would be here by now.
  await sub.ok({ op: "ack", seq: 2 });
  assert.equal(sub.msgs.length, 2);
});

test("bad expectations are refused with bad_request and the connection stays usable", async () => {
  const s = uniqueSubject("bad-expect");
  const c = await open(s, "writer");
  for (const bad of ['"3"', "-1", "1.5", "null", "9007199254740992", "[1]"]) {
    const reply = await rawRequest(c, "x", `{"op":"pub","id":"x","data":1,"expectLastSeq":${bad}}`);
    assert.deepEqual([reply.op, reply.code], ["err", "bad_request"], bad);
    assert.equal(reply.message, "`expectLastSeq` must be an integer between 0 and 9007199254740991", bad);
  }
  const twice = await rawRequest(c, "twice", '{"op":"pub","id":"twice","data":1,"expectLastSeq":0,"expectLastSeq":0}');
  assert.equal(twice.message, "field `expectLastSeq` is given more than once");
  for (const [headers, message] of [
    [{ "expected-last-seq": "x" }, /^Expected-Last-Seq must be one integer between 0 and 9007199254740991/],
    [{ "expected-last-seq": "-1" }, /^Expected-Last-Seq must be one integer/],
    [{ "nats-expected-last-sequence": "1.0" }, /^Nats-Expected-Last-Sequence must be one integer/],
    [{ "expected-last-seq": "1", "nats-expected-last-sequence": "2" }, /disagree; send one of them/],
  ]) {
    const res = await httpPublish(s, 1, headers);
    assert.equal(res.status, 400, res.text);
    assert.match(res.json.error.message, message);
  }
  const twiceOverHttp = new Headers({ "content-type": "application/json" });
  twiceOverHttp.append("expected-last-seq", "0");
  twiceOverHttp.append("expected-last-seq", "0");
  const joined = await call("POST", `/v1/stream/${s}`, { body: "1", headers: Object.fromEntries(twiceOverHttp) });
  assert.equal(joined.status, 400, "a header given twice arrives as \"0, 0\"");
  assert.deepEqual(await c.request({ op: "pub", id: "fine", data: 1, expectLastSeq: 0 }), { op: "ok", id: "fine", seq: 1 });
});

test("two writers racing on expectLastSeq: exactly one wins each of 1,000 rounds, the loser learns lastSeq", { timeout: 600_000 }, async () => {
  const s = uniqueSubject("race");
  const a = await open(s, "writer-a");
  const b = await open(s, "writer-b");
  // Writer b alternates between WebSocket and HTTP, so both surfaces race.
  const publishB = async (round, expectLastSeq) => {
    if (round % 2 === 0) return b.request({ op: "pub", data: { round, writer: "b" }, expectLastSeq });
    const res = await httpPublish(s, { round, writer: "b" }, { "expected-last-seq": String(expectLastSeq) });
    if (res.status === 201) return { op: "ok", seq: res.json.seq };
    assert.equal(res.status, 409, res.text);
    return { op: "err", code: res.json.error.code, lastSeq: res.json.error.lastSeq, message: res.json.error.message };
  };
  const ROUNDS = 1000;
  let last = 0;
  const wins = { a: 0, b: 0 };
  const winners = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Both read `last`, then both publish expecting it; who goes first alternates.
    const attempts = [
      () => a.request({ op: "pub", data: { round, writer: "a" }, expectLastSeq: last }),
      () => publishB(round, last),
    ];
    if (round % 4 >= 2) attempts.reverse();
    const replies = await Promise.all(attempts.map((attempt) => attempt()));
    const [ra, rb] = round % 4 >= 2 ? [replies[1], replies[0]] : replies;
    const won = [ra, rb].filter((r) => r.op === "ok");
    assert.equal(won.length, 1, `round ${round}: ${JSON.stringify([ra, rb])}`);
    const [winner, loser, name] = ra.op === "ok" ? [ra, rb, "a"] : [rb, ra, "b"];
    assert.equal(winner.seq, last + 1, `round ${round}: the winner's sequence`);
    assertConflict(loser, winner.seq, `round ${round}: the loser`);
    last = winner.seq;
    wins[name]++;
    winners.push(name);
  }
  // The subject holds exactly the winners' messages, in round order.
  const stored = [];
  for (let from = 1; from <= ROUNDS; ) {
    const page = await call("GET", `/v1/stream/${s}/messages?from=${from}&limit=1000`);
    stored.push(...page.json.messages);
    from = page.json.next;
  }
  assert.equal(stored.length, ROUNDS);
  stored.forEach((m, i) => assert.deepEqual([m.seq, m.data], [i + 1, { round: i, writer: winners[i] }]));
  console.log(`race: writer a won ${wins.a} rounds, writer b ${wins.b}`);
});

test("a conditional publish resent after a dropped connection answers its original sequence", async () => {
  const s = uniqueSubject("retry");
  const observer = await open(s, "observer");
  await observer.ok({ op: "sub", from: "first" });
  const frame = { op: "pub", id: 1, data: { order: 17, event: "created" }, msgId: "order-17-created", expectLastSeq: 0 };
  // The first connection drops right after the server stored the publish: its reply is lost.
  const first = await open(s, "dropped");
  first.send(frame);
  await observer.waitForMessages(1);
  first.close();
  await first.waitClosed();
  // Meanwhile another writer appends, so the expectation no longer holds...
  const other = await open(s, "other");
  assert.equal((await other.ok({ op: "pub", data: "someone else" })).seq, 2);
  // ...yet the resend is recognised as a duplicate, never a false conflict.
  const again = await open(s, "resend");
  assert.deepEqual(await again.request(frame), { op: "ok", id: 1, seq: 1, duplicate: true });
  assert.deepEqual(await again.request({ ...frame, id: 2 }), { op: "ok", id: 2, seq: 1, duplicate: true });
  // A new key with the same stale expectation is a conflict.
  assertConflict(await again.request({ ...frame, id: 3, msgId: "order-17-created-v2" }), 2, "a new key");
  // A conditional batch is deduplicated as a whole.
  const batch = { op: "pub", id: 4, batch: [1, 2], msgId: "batch-key", expectLastSeq: 2 };
  assert.deepEqual(await again.request(batch), { op: "ok", id: 4, seq: 3, last: 4 });
  assert.deepEqual(await again.request({ ...batch, id: 5 }), { op: "ok", id: 5, seq: 3, last: 4, duplicate: true });

  // The same over HTTP: Idempotency-Key with Expected-Last-Seq.
  const headers = { "idempotency-key": "http-key", "expected-last-seq": "4" };
  const stored = await httpPublish(s, { via: "http" }, headers);
  assert.deepEqual([stored.status, stored.json], [201, { seq: 5 }]);
  await other.ok({ op: "pub", data: "moved on" });
  const resent = await httpPublish(s, { via: "http" }, headers);
  assert.deepEqual([resent.status, resent.json], [200, { seq: 5, duplicate: true }]);
  assert.equal((await other.ok({ op: "info" })).last, 6);
});
