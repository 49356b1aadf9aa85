// Durable consumers for operators on real workerd: the listing (HTTP and the `consumers` op)
// with lag, in-flight count and connection; resets, also under a live subscription, where the
// subscriber gets every message after the new position exactly once and nothing it was not
// asked to see again; deletes, which end a live subscription; refusals; token actions.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { httpCall } from "./http-client.mjs";
import { serverPerFile } from "./harness.mjs";
import { WsClient, uniqueSubject, until } from "./ws-client.mjs";
import { allowSubjects, claims, hs256, startTokenServer } from "./tokens.mjs";

const harness = serverPerFile(() => startTokenServer());
const call = (method, path, options) => httpCall(harness.server, method, path, options);

async function publishMany(subject, from, to) {
  const batch = Array.from({ length: to - from + 1 }, (_, k) => ({ n: from + k }));
  const res = await call("POST", `/v1/stream/${subject}?batch=1`, { body: JSON.stringify(batch) });
  assert.equal(res.status, 201, res.text);
  assert.deepEqual(res.json, { seq: from, last: to });
}

async function consumers(subject) {
  const res = await call("GET", `/v1/stream/${subject}/consumers`);
  assert.equal(res.status, 200, res.text);
  return res.json;
}

const seqs = (messages) => messages.map((m) => m.seq);
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, k) => from + k);

describe("listing", () => {
  test("each consumer with its position, lag, in-flight messages, activity and connection", async () => {
    const subject = uniqueSubject("cons");
    await publishMany(subject, 1, 10);
    const before = Date.now();
    const idle = await harness.open(subject, "idle consumer");
    await idle.ok({ op: "sub", from: 4, consumer: "archive" });
    idle.close();
    const live = await harness.open(subject, "live consumer");
    await live.ok({ op: "sub", from: "first", consumer: "billing", window: 3 });
    await live.waitForMessages(3);
    await live.ok({ op: "ack", seq: 2 });
    await until(async () => (await consumers(subject)).consumers.find((c) => c.name === "archive")?.connected === false, 5_000, "archive's socket closed");
    const listing = await consumers(subject);
    assert.equal(listing.last, 10);
    const [archive, billing] = listing.consumers;
    assert.deepEqual({ ...archive, lastActivity: 0 }, { name: "archive", acked: 3, pending: 7, ackPending: 0, redelivered: 0, lastActivity: 0, connected: false });
    assert.deepEqual({ ...billing, lastActivity: 0 }, { name: "billing", acked: 2, pending: 8, ackPending: 3, redelivered: 0, lastActivity: 0, connected: true });
    assert.ok(billing.lastActivity >= before && billing.lastActivity <= Date.now(), "lastActivity: the last ack");
    const overSocket = await live.ok({ op: "consumers", id: "c" });
    assert.deepEqual(overSocket.consumers, listing.consumers);
    assert.equal(overSocket.last, 10);
  });

  test("a subject without consumers lists none", async () => {
    assert.deepEqual(await consumers(uniqueSubject("none")), { consumers: [], last: 0 });
  });
});

describe("reset", () => {
  test("under a live subscription: every message after the new position comes exactly once, then new ones", async () => {
    const subject = uniqueSubject("reset-live");
    await publishMany(subject, 1, 20);
    const sub = await harness.open(subject, "subscriber");
    await sub.ok({ op: "sub", from: "first", consumer: "worker", window: 5 });
    await sub.waitForMessages(5);
    await sub.ok({ op: "ack", seq: 5 }); // the reply means the server applied it
    await sub.waitForMessages(10);
    await sub.ok({ op: "ack", seq: 8 });
    await sub.waitForMessages(13);
    assert.deepEqual(seqs(sub.msgs), range(1, 13), "1..13 delivered, 9..13 in flight");

    // Rewind to 3 while 9..13 are in flight and unacknowledged.
    const framesBefore = sub.frames.length;
    const reset = await call("PUT", `/v1/stream/${subject}/consumers/worker`, { body: '{"acked":3}' });
    assert.equal(reset.status, 200, reset.text);
    assert.deepEqual(reset.json, { name: "worker", acked: 3, pending: 17 });
    const notice = await sub.nextFrame((f) => f.op === "reset", { since: framesBefore, what: "reset notice" });
    assert.deepEqual(notice, { op: "reset", consumer: "worker", acked: 3 });
    const noticeAt = sub.frames.indexOf(sub.frames.slice(framesBefore).find((f) => f.frame.op === "reset"));
    const afterReset = () => sub.frames.slice(noticeAt + 1).flatMap((f) => (f.frame.op === "msg" ? [f.frame] : f.frame.op === "msgs" ? f.frame.messages : []));

    // The subscriber acks as it goes; the window (5) paces the rest.
    for (let acked = 3; acked < 20;) {
      await sub.waitFor(() => afterReset().length >= Math.min(acked - 3 + 5, 17), 10_000, `messages after ${acked}`);
      acked = afterReset().at(-1).seq;
      await sub.ok({ op: "ack", seq: acked });
    }
    await publishMany(subject, 21, 23);
    await sub.waitFor(() => afterReset().length >= 20, 10_000, "the new messages");
    await sub.ok({ op: "ack", seq: 23 });
    assert.deepEqual(seqs(afterReset()), range(4, 23), "after the reset: 4..23, each once, in order");
    assert.ok(afterReset().every((m) => !m.redelivered));
    assert.equal(sub.framesOf("err").length, 0, `no error: ${JSON.stringify(sub.framesOf("err"))}`);
    const [worker] = (await consumers(subject)).consumers;
    assert.deepEqual([worker.acked, worker.pending, worker.ackPending, worker.connected], [23, 0, 0, true]);

    // Ahead: skip to 26 of 30 while nothing is in flight.
    await publishMany(subject, 24, 25);
    await sub.waitFor(() => afterReset().length >= 22, 10_000, "24 and 25");
    const sinceSkip = sub.frames.length;
    const beyond = await sub.request({ op: "consumer.reset", id: "beyond", name: "worker", acked: 28 });
    assert.equal(beyond.code, "bad_request");
    assert.match(beyond.message, /between 0 and 25/, "beyond last is refused");
    await sub.ok({ op: "consumer.reset", name: "worker", acked: 25 });
    await publishMany(subject, 26, 30);
    await sub.waitFor(() => sub.frames.slice(sinceSkip).filter((f) => f.frame.op === "msg" || f.frame.op === "msgs").length > 0, 10_000, "26..");
    await sub.waitFor(() => sub.msgs.at(-1).seq === 30, 10_000, "30");
    const afterSkip = sub.frames.slice(sinceSkip).flatMap((f) => (f.frame.op === "msg" ? [f.frame] : f.frame.op === "msgs" ? f.frame.messages : []));
    assert.deepEqual(seqs(afterSkip), range(26, 30), "after moving to 25 with 24 and 25 unacked: only 26..30");
  });

  test("of a consumer that is not connected: its next subscription resumes after the new position", async () => {
    const subject = uniqueSubject("reset-idle");
    await publishMany(subject, 1, 6);
    const first = await harness.open(subject, "first");
    await first.ok({ op: "sub", from: "first", consumer: "later" });
    await first.waitForMessages(6);
    await first.ok({ op: "ack", seq: 6 });
    first.close();
    const reset = await call("PUT", `/v1/stream/${subject}/consumers/later`, { body: '{"acked":2}' });
    assert.deepEqual(reset.json, { name: "later", acked: 2, pending: 4 });
    const second = await harness.open(subject, "second");
    const ok = await second.ok({ op: "sub", consumer: "later" });
    assert.equal(ok.from, 3);
    await second.waitForMessages(4);
    assert.deepEqual(seqs(second.msgs), range(3, 6));
  });

  test("creates a consumer at a position; 0 means everything again", async () => {
    const subject = uniqueSubject("reset-new");
    await publishMany(subject, 1, 3);
    assert.deepEqual((await call("PUT", `/v1/stream/${subject}/consumers/fresh`, { body: '{"acked":0}' })).json, { name: "fresh", acked: 0, pending: 3 });
    assert.deepEqual((await consumers(subject)).consumers.map((c) => [c.name, c.acked]), [["fresh", 0]]);
  });

  test("bad requests are refused with a message and change nothing", async () => {
    const subject = uniqueSubject("reset-bad");
    await publishMany(subject, 1, 3);
    for (const [path, body, message] of [
      [`/v1/stream/${subject}/consumers/c`, '{"acked":4}', /between 0 and 3/],
      [`/v1/stream/${subject}/consumers/c`, '{"acked":-1}', /acked/],
      [`/v1/stream/${subject}/consumers/c`, '{"acked":"1"}', /acked/],
      [`/v1/stream/${subject}/consumers/c`, '{"acked":1,"extra":2}', /unknown field `extra`/],
      [`/v1/stream/${subject}/consumers/c`, '{"acked":1,"acked":2}', /duplicate key/],
      [`/v1/stream/${subject}/consumers/c`, "", /body/],
      [`/v1/stream/${subject}/consumers/a~b%20c`, '{"acked":1}', /consumer may only contain/],
      [`/v1/stream/${subject}/consumers/c?force=1`, '{"acked":1}', /unknown query parameter `force`/],
    ]) {
      const res = await call("PUT", path, { body });
      assert.equal(res.status, 400, `${path} ${body}: ${res.text}`);
      assert.match(res.json.error.message, message, `${path} ${body}`);
    }
    const big = await call("PUT", `/v1/stream/${subject}/consumers/c`, { body: `{"acked":1,"pad":"${"x".repeat(2000)}"}` });
    assert.equal(big.status, 413);
    assert.deepEqual((await consumers(subject)).consumers, []);
    const socket = await harness.open(subject, "bad ops");
    const refused = await socket.request({ op: "consumer.reset", id: 7, name: "c", acked: 9 });
    assert.equal(refused.op, "err");
    assert.equal(refused.code, "bad_request");
    assert.equal(refused.id, 7);
    assert.equal((await socket.request({ op: "consumer.reset", name: "c" })).message, "missing field `acked`");
  });
});

describe("delete", () => {
  test("ends a live subscription with an error, and the consumer starts over", async () => {
    const subject = uniqueSubject("delete");
    await publishMany(subject, 1, 4);
    const sub = await harness.open(subject, "subscriber");
    await sub.ok({ op: "sub", from: "first", consumer: "gone" });
    await sub.waitForMessages(4);
    await sub.ok({ op: "ack", seq: 4 });
    const since = sub.frames.length;
    const res = await call("DELETE", `/v1/stream/${subject}/consumers/gone`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { deleted: true });
    const ended = await sub.nextFrame((f) => f.op === "err", { since, what: "the subscription's end" });
    assert.equal(ended.code, "conflict");
    assert.equal(ended.id, null);
    assert.match(ended.message, /consumer "gone" was deleted/);
    await publishMany(subject, 5, 5);
    assert.equal((await sub.request({ op: "ack", seq: 5 })).code, "bad_request", "no subscription any more");
    assert.deepEqual((await consumers(subject)).consumers, []);
    const again = await sub.ok({ op: "sub", consumer: "gone" });
    assert.equal(again.from, 1, "a new consumer of that name starts at the first message");
  });

  test("of an unknown consumer is 404, over HTTP and as an op", async () => {
    const subject = uniqueSubject("delete-missing");
    const res = await call("DELETE", `/v1/stream/${subject}/consumers/nobody`);
    assert.equal(res.status, 404);
    assert.equal(res.json.error.code, "not_found");
    assert.match(res.json.error.message, /has no consumer "nobody"/);
    const socket = await harness.open(subject, "deleter");
    const reply = await socket.request({ op: "consumer.delete", id: "d", name: "nobody" });
    assert.deepEqual([reply.op, reply.id, reply.code], ["err", "d", "not_found"]);
    await socket.ok({ op: "sub", consumer: "somebody" });
    assert.deepEqual(await socket.ok({ op: "consumer.delete", id: "d2", name: "somebody" }), { op: "ok", id: "d2", deleted: true });
  });
});

describe("access tokens", () => {
  const bearer = (actions, subject) => ({ authorization: `Bearer ${hs256(claims({ allow: [allowSubjects([subject], actions)] }))}` });

  test("listing needs sub; reset and delete need admin", async () => {
    const subject = uniqueSubject("tok");
    await publishMany(subject, 1, 2);
    await call("PUT", `/v1/stream/${subject}/consumers/c`, { body: '{"acked":1}' });
    const reader = bearer(["sub"], subject);
    const admin = bearer(["admin"], subject);
    assert.equal((await call("GET", `/v1/stream/${subject}/consumers`, { auth: reader })).status, 200);
    assert.equal((await call("GET", `/v1/stream/${subject}/consumers`, { auth: admin })).status, 403);
    for (const [method, body] of [["PUT", '{"acked":0}'], ["DELETE", undefined]]) {
      const refused = await call(method, `/v1/stream/${subject}/consumers/c`, { auth: reader, body });
      assert.equal(refused.status, 403, `${method} with sub`);
      assert.match(refused.json.error.message, /admin/);
    }
    assert.equal((await call("PUT", `/v1/stream/${subject}/consumers/c`, { auth: admin, body: '{"acked":0}' })).status, 200);
    assert.equal((await call("DELETE", `/v1/stream/${subject}/consumers/c`, { auth: admin })).status, 200);
  });

  test("the ops are checked per frame", async () => {
    const subject = uniqueSubject("tok-ws");
    await publishMany(subject, 1, 1);
    const token = hs256(claims({ allow: [allowSubjects([subject], ["sub"])] }));
    const ws = await WsClient.connect(`${harness.server.wsUrl}/v1/stream/${subject}?token=${token}`, { label: "token socket" });
    harness.clients.push(ws);
    assert.equal((await ws.request({ op: "consumers" })).op, "ok");
    for (const frame of [{ op: "consumer.reset", name: "c", acked: 0 }, { op: "consumer.delete", name: "c" }]) {
      const refused = await ws.request(frame);
      assert.equal(refused.code, "forbidden", JSON.stringify(frame));
    }
  });
});
