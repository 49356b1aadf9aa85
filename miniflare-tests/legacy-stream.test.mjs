// The original durable-stream client (unmodified, from the shared legacy directory) against the
// built Worker's `/stream/{subject}` route: every client method, the fixes of the original's
// bugs (SPEC.md §12), reconnects, hibernation, pipelining, large fragmented payloads, tokens,
// and interop both ways with native WebSocket, HTTP and /ds clients on the same subject.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, TEST_KEY } from "./server.mjs";
import { connect, rawUpgrade, uniqueSubject, until } from "./ws-client.mjs";
import { httpCall, AUTH } from "./http-client.mjs";
import { TOKEN_SECRET, allowSubjects, claims, hs256 } from "./tokens.mjs";
import { legacyClient, collect, shutdown, shutdownAll } from "./legacy-client.mjs";

const BASE = 100000000000;
let server;

// The original client throws inside its socket listener on a frame it cannot take (a `pub`
// without a listener, a reply to nothing): an uncaught error in the app. Any such error fails
// the file.
const clientErrors = [];
const recordError = (error) => clientErrors.push(String(error?.stack ?? error));
before(async () => {
  process.on("uncaughtException", recordError);
  process.on("unhandledRejection", recordError);
  server = await startServer({ secrets: { TOKEN_SECRET } });
});
after(async () => {
  shutdownAll();
  await server?.stop();
  process.off("uncaughtException", recordError);
  process.off("unhandledRejection", recordError);
  assert.deepEqual(clientErrors, [], "the original client threw on a frame from the server");
});

/** Every frame the client's socket receives from now on, parsed (the socket changes on a
 *  reconnect: call again). */
function tap(client) {
  const frames = [];
  client.ws.addEventListener("message", (event) => frames.push(JSON.parse(event.data)));
  return frames;
}

const evict = async (subject) => {
  const res = await fetch(`${server.url}/test/evict/${subject}`);
  assert.equal(res.status, 200, "the test build has /test/evict (DSTREAM_TEST_FEATURES=test-hooks)");
};

test("every client method, with the original's numbering and default state", async () => {
  const subject = uniqueSubject("legacy-methods");
  const c = await legacyClient(server, subject);
  const info = await c.info();
  assert.equal(info.sequence, BASE, "an empty subject reports the base");
  assert.deepEqual(info.data, { cmd: "getStreamInfo" });
  assert.equal(info.clientId, c.clientId);
  assert.equal(info.pub, undefined);

  const first = await c.publish({ hello: 1 });
  assert.deepEqual([first.sequence, first.data, first.clientId], [BASE + 1, { hello: 1 }, c.clientId]);
  assert.equal(first.cMsgId, c.clientId + 2, "the reply carries the request's cMsgId exactly");
  assert.equal((await c.publish("two")).sequence, BASE + 2);

  const state = await c.getState();
  assert.deepEqual(state.state, { lock: false, sequence: BASE });
  assert.equal(state.sequence, BASE + 2);
  const put = await c.putState({ lock: true, sequence: BASE + 1 });
  assert.deepEqual(put.data, { cmd: "putState", state: { lock: true, sequence: BASE + 1 } });
  assert.deepEqual((await c.getState()).state, { lock: true, sequence: BASE + 1 });

  assert.equal(await c.deleteMessages(BASE + 1), undefined, "deleteMessages resolves to nothing, as the original");
  assert.equal((await c.info()).sequence, BASE + 2, "deleting keeps the counter");
  const sub = collect(c, 0);
  await sub.waitFor(1);
  assert.deepEqual(sub.got.map((m) => [m.sequence, m.data]), [[BASE + 2, "two"]], "the deleted message is gone");
  assert.equal(sub.got[0].sMsgId, BASE + 2);
  await c.unsubscribe();

  // Deleting past the end empties the subject; numbering goes on.
  await c.deleteMessages(BASE + 1000);
  assert.equal((await c.publish(3)).sequence, BASE + 3);
  const http = await httpCall(server, "GET", `/v1/stream/${subject}`);
  assert.deepEqual([http.json.first, http.json.last, http.json.count], [3, 3, 1]);
  shutdown(c);
});

test("falsy payloads and unknown commands are stored, acked and delivered (B1)", async () => {
  const subject = uniqueSubject("legacy-falsy");
  const c = await legacyClient(server, subject);
  const payloads = [0, "", false, null, { cmd: "bogus" }, { cmd: "GetStreamInfo" }, [], {}];
  for (const [i, payload] of payloads.entries()) {
    const reply = await c.publish(payload);
    assert.equal(reply.sequence, BASE + 1 + i, JSON.stringify(payload));
    assert.deepEqual(reply.data, payload);
  }
  const sub = collect(c, BASE);
  await sub.waitFor(payloads.length);
  assert.deepEqual(sub.data(), payloads);
  assert.deepEqual(sub.got.map((m) => m.sequence), payloads.map((_, i) => BASE + 1 + i));
  // Every ack (falsy data included) was taken: the subscription is live for the next one.
  await c.publish(0);
  await sub.waitFor(payloads.length + 1);
  assert.equal(sub.got.at(-1).data, 0);
  shutdown(c);
});

test("pipelined publishes are numbered in send order; payloads of tens of KB arrive whole", async () => {
  const subject = uniqueSubject("legacy-pipeline");
  const publisher = await legacyClient(server, subject);
  const subscriber = await legacyClient(server, subject);
  const sub = collect(subscriber, 0);
  // Over 16 KiB the client sends continuation frames.
  const big = (n, char) => char.repeat(n);
  const payloads = Array.from({ length: 60 }, (_, i) => (i % 20 === 7 ? { blob: big(40_000 + i, "x") } : { n: i }));
  payloads.push({ blob: big(300_000, "y") });
  const replies = await Promise.all(payloads.map((p) => publisher.publish(p)));
  assert.deepEqual(replies.map((r) => r.sequence), payloads.map((_, i) => BASE + 1 + i));
  await sub.waitFor(payloads.length);
  assert.deepEqual(sub.data(), payloads);
  assert.ok(sub.got.every((m) => m.clientId === publisher.clientId));
  assert.deepEqual(sub.got.map((m) => m.cMsgId), replies.map((r) => r.cMsgId), "deliveries carry the publisher's cMsgId");
  shutdown(publisher);
  shutdown(subscriber);
});

test("subscribe(S) resumes after S, exclusive (B2); S at or past the end means only new messages", async () => {
  const subject = uniqueSubject("legacy-resume");
  const c = await legacyClient(server, subject);
  for (let i = 1; i <= 5; i++) await c.publish(i);
  const reader = await legacyClient(server, subject);
  const after3 = collect(reader, BASE + 3);
  await after3.waitFor(2);
  assert.deepEqual(after3.data(), [4, 5]);
  await reader.unsubscribe();

  const late = await legacyClient(server, subject);
  const fromEnd = collect(late, BASE + 5);
  const beyond = await legacyClient(server, subject);
  const fromBeyond = collect(beyond, BASE + 99);
  // The subscribe requests are answered before this info: the subscriptions exist.
  await late.info();
  await beyond.info();
  await c.publish(6);
  await fromEnd.waitFor(1);
  await fromBeyond.waitFor(1);
  assert.deepEqual([fromEnd.data(), fromBeyond.data()], [[6], [6]]);
  [c, reader, late, beyond].forEach(shutdown);
});

test("messages published during a replay arrive once each, in order, with no gap (B3)", async () => {
  const subject = uniqueSubject("legacy-switch");
  const publisher = await legacyClient(server, subject);
  await Promise.all(Array.from({ length: 400 }, (_, i) => publisher.publish({ n: i })));
  const subscriber = await legacyClient(server, subject);
  const sub = collect(subscriber, 0);
  // Publish while the backlog is being replayed, one at a time and in bursts.
  for (let i = 400; i < 460; i++) {
    if (i % 10 === 0) await Promise.all([0, 1, 2].map(() => publisher.publish({ n: i++ })));
    await publisher.publish({ n: i });
  }
  const total = (await publisher.info()).sequence - BASE;
  await sub.waitFor(total, `${total} messages`);
  assert.deepEqual(sub.got.map((m) => m.sequence), Array.from({ length: total }, (_, i) => BASE + 1 + i));
  assert.equal(sub.got.length, total, "no duplicates");
  shutdown(publisher);
  shutdown(subscriber);
});

test("after the unsubscribe reply nothing more is delivered (B4)", async () => {
  const subject = uniqueSubject("legacy-unsub");
  const publisher = await legacyClient(server, subject);
  await Promise.all(Array.from({ length: 300 }, (_, i) => publisher.publish({ n: i })));
  const subscriber = await legacyClient(server, subject);
  const frames = tap(subscriber);
  // An app that acks slowly: the replay is still running when it unsubscribes.
  collect(subscriber, 0, { ack: (m) => m.data.n < 5 });
  await until(() => frames.some((f) => f.pub), 10_000, "the first delivery");
  await subscriber.unsubscribe();
  const unsubReply = frames.findIndex((f) => f.data?.cmd === "unsubscribe");
  await publisher.publish({ n: "after" });
  await subscriber.info();
  const late = frames.slice(unsubReply).filter((f) => f.pub);
  assert.deepEqual(late, [], "deliveries after the unsubscribe reply");
  shutdown(publisher);
  shutdown(subscriber);
});

test("any JSON value is a state, and the subject stays usable (B5)", async () => {
  const subject = uniqueSubject("legacy-state");
  const c = await legacyClient(server, subject);
  for (const state of [null, [1, "two"], "text", 5, false, { nested: { deep: [BASE] } }]) {
    await c.putState(state);
    assert.deepEqual((await c.getState()).state, state);
    const fresh = await legacyClient(server, subject);
    assert.deepEqual((await fresh.getState()).state, state, "another connection reads it");
    assert.equal((await fresh.info()).sequence, BASE);
    shutdown(fresh);
  }
  shutdown(c);
});

test("stray acks are ignored and bad frames answered without a stack trace (B8, B9)", async () => {
  const subject = uniqueSubject("legacy-stray");
  const c = await legacyClient(server, subject);
  const frames = tap(c);
  await c.publish("one");
  // Acks for nothing, with no subscription, for an unknown id, and repeated.
  c.ws.send(JSON.stringify({ data: "one", sMsgId: BASE + 1 }));
  c.ws.send(JSON.stringify({ sMsgId: 0.123 }));
  c.ws.send(JSON.stringify({ data: null, sMsgId: BASE + 999 }));
  const sub = collect(c, 0);
  await sub.waitFor(1);
  c.ws.send(JSON.stringify({ ...sub.got[0] }));
  c.ws.send(JSON.stringify({ ...sub.got[0] }));
  // Malformed frames.
  for (const bad of ["not json", "[1,2]", '{"data":1}', '{"data":1,"cMsgId":0}', '{"a":1,"a":2}']) c.ws.send(bad);
  c.ws.send(new Uint8Array([1, 2, 3]));
  // Frames are answered in order: the errors are in before this reply.
  assert.equal((await c.publish("two")).sequence, BASE + 2, "the connection is still usable");
  await sub.waitFor(2);
  const errors = frames.filter((f) => f.error || f.op === "err");
  assert.equal(errors.length, 6, JSON.stringify(frames));
  for (const frame of errors) {
    const error = frame.error ?? frame;
    assert.equal(typeof error.code, "string");
    assert.doesNotMatch(JSON.stringify(frame), /\n\s+at |\.rs:\d|panicked/);
    assert.ok(!frame.pub && !frame.cMsgId && !frame.sMsgId, "an error the client would act on");
  }
  // Acks never get an answer: every frame but the errors is a reply or a delivery.
  assert.ok(frames.every((f) => f.error || f.op === "err" || f.pub || f.cMsgId), JSON.stringify(frames));
  // A bad command still settles the request, with the error.
  const refused = await c.publish({ cmd: "subscribe", startSequence: "soon" });
  assert.equal(refused.error.code, "bad_request");
  assert.equal(refused.cMsgId, c.cMsgId);
  shutdown(c);
});

test("no frame larger than the original client takes (1 MiB) is sent to it", async () => {
  const subject = uniqueSubject("legacy-oversize");
  const c = await legacyClient(server, subject);
  const sub = collect(c, 0);
  await c.info();
  // Its reply would echo it: refused before anything is stored, the echo without the data.
  const refused = await c.publish("x".repeat(1_048_200));
  assert.deepEqual([refused.error?.code, refused.data], ["too_large", null]);
  // A native message of nearly 1 MiB reaches the client as an error it can ack.
  const huge = JSON.stringify("y".repeat(1_048_200));
  const posted = await httpCall(server, "POST", `/v1/stream/${subject}`, { body: huge });
  assert.equal(posted.status, 201, posted.text);
  await c.publish("small");
  await sub.waitFor(2);
  assert.ok(sub.got[0].data === null, `data of ${JSON.stringify(sub.got[0].data)?.length} bytes`);
  assert.equal(sub.got[0].error?.code, "too_large");
  assert.match(sub.got[0].error.message, /messages\/1/);
  assert.equal(sub.got[1].data, "small");
  assert.equal(c.reconnects, 0, "the client never had to reconnect");
  shutdown(c);
});

test("a dropped connection resubscribes from the last ack and misses nothing, twice nothing", async () => {
  const subject = uniqueSubject("legacy-reconnect");
  const publisher = await legacyClient(server, subject);
  const subscriber = await legacyClient(server, subject);
  const sub = collect(subscriber, 0);
  for (let i = 1; i <= 3; i++) await publisher.publish(i);
  await sub.waitFor(3);
  await until(() => subscriber.lastSequence === BASE + 3, 5_000, "the third ack");
  subscriber.ws.close();
  for (let i = 4; i <= 6; i++) await publisher.publish(i);
  await until(() => subscriber.reconnects >= 1, 20_000, "the client's reconnect");
  await sub.waitFor(6);
  await publisher.publish(7);
  await sub.waitFor(7);
  assert.deepEqual(sub.data(), [1, 2, 3, 4, 5, 6, 7]);
  shutdown(publisher);
  shutdown(subscriber);
});

test("a legacy socket survives the object's eviction between messages, its subscription and unacked deliveries intact", async () => {
  const subject = uniqueSubject("legacy-evict");
  const publisher = await legacyClient(server, subject);
  const subscriber = await legacyClient(server, subject);
  const held = [];
  const got = [];
  subscriber.subscribe(0, (msg, ack) => {
    got.push(msg.data);
    // The app holds the ack of message 2.
    if (msg.data === 2) held.push(ack);
    else ack();
  });
  await subscriber.info();
  await publisher.publish(1);
  await publisher.publish(2);
  await until(() => got.length === 2, 10_000, "two deliveries");
  await evict(subject);
  await publisher.publish(3);
  await until(() => got.length === 3, 10_000, "the delivery after the eviction");
  await evict(subject);
  // The held ack is still accepted (cumulative: it acknowledges 3 as well), and nothing came twice.
  held[0]();
  assert.equal((await subscriber.info()).sequence, BASE + 3);
  await evict(subject);
  await publisher.publish(4);
  await until(() => got.length === 4, 10_000, "the fourth delivery");
  assert.deepEqual(got, [1, 2, 3, 4]);
  // The ack was applied: the subscription's acknowledged position is 4 after the last ack.
  await until(async () => subscriber.lastSequence === BASE + 4, 5_000, "the last ack");
  shutdown(publisher);
  shutdown(subscriber);
});

test("interop: legacy publishes reach native WebSocket, HTTP and /ds readers, with the ids as headers", async () => {
  const subject = uniqueSubject("legacy-to-native");
  const native = await connect(server, subject);
  await native.ok({ op: "sub", from: "first" });
  const c = await legacyClient(server, subject);
  const reply = await c.publish({ order: 1 });
  await c.publish(false);
  await native.waitForMessages(2);
  assert.deepEqual(native.msgs.map((m) => [m.seq, m.data]), [[1, { order: 1 }], [2, false]]);
  assert.deepEqual(native.msgs[0].headers, { "legacy-client-id": String(c.clientId), "legacy-cmsg-id": String(reply.cMsgId) });
  const page = await httpCall(server, "GET", `/v1/stream/${subject}/messages?from=1`);
  assert.deepEqual(page.json.messages.map((m) => m.data), [{ order: 1 }, false]);
  const ds = await fetch(`${server.url}/ds/v1/stream/${subject}?offset=-1`, { headers: AUTH });
  assert.equal(ds.status, 200);
  assert.deepEqual(await ds.json(), [{ order: 1 }, false]);
  native.close();
  shutdown(c);
});

test("interop: native WebSocket, HTTP and /ds publishes reach the original client, numbered from the base", async () => {
  const subject = uniqueSubject("native-to-legacy");
  const c = await legacyClient(server, subject);
  const sub = collect(c, 0);
  await c.info();
  const native = await connect(server, subject);
  await native.ok({ op: "pub", data: { via: "ws" } });
  await native.ok({ op: "pub", batch: [1, 2] });
  const posted = await httpCall(server, "POST", `/v1/stream/${subject}`, { body: JSON.stringify({ via: "http" }), headers: { "content-type": "application/json" } });
  assert.equal(posted.status, 201, posted.text);
  const appended = await fetch(`${server.url}/ds/v1/stream/${subject}`, {
    method: "POST",
    headers: { ...AUTH, "content-type": "application/json" },
    body: JSON.stringify({ via: "ds" }),
  });
  assert.ok(appended.ok, `${appended.status}`);
  await sub.waitFor(5);
  assert.deepEqual(sub.data(), [{ via: "ws" }, 1, 2, { via: "http" }, { via: "ds" }]);
  assert.deepEqual(sub.got.map((m) => m.sequence), [1, 2, 3, 4, 5].map((n) => BASE + n));
  assert.ok(sub.got.every((m) => m.clientId === null && m.cMsgId === null));
  native.close();
  shutdown(c);
});

test("routes and credentials: ?apiKey= (key or token), 401, 400, 404", async () => {
  const subject = uniqueSubject("legacy-auth");
  // Refused upgrades (an accepted one would wait for a hello the original protocol never sends).
  const refusedUpgrade = async (query) => rawUpgrade(`${server.url}/stream/${subject}${query}`);
  for (const query of ["", "?apiKey=wrong"]) {
    const refused = await refusedUpgrade(query);
    assert.equal(refused.status, 401, query);
    assert.doesNotMatch(refused.body, /\n\s+at /);
  }
  const status = async (path) => (await fetch(`${server.url}${path}`)).status;
  assert.equal(await status(`/stream/${subject}?apiKey=${TEST_KEY}`), 400, "not an upgrade");
  for (const path of ["/", "/stream", "/stream/"]) assert.equal(await status(`${path}?apiKey=${TEST_KEY}`), 404, path);

  // A token that may only subscribe: it reads, and its publishes are refused in the reply.
  const reader = hs256(claims({ allow: [allowSubjects([subject], ["sub"])] }));
  const writer = await legacyClient(server, subject);
  await writer.publish("from the key");
  const c = await legacyClient(server, subject, { apiKey: reader });
  const sub = collect(c, 0);
  await sub.waitFor(1);
  assert.deepEqual(sub.data(), ["from the key"]);
  const refused = await c.publish("from the token");
  assert.equal(refused.error.code, "forbidden");
  assert.equal((await c.getState()).error.code, "forbidden");
  assert.equal((await writer.info()).sequence, BASE + 1);
  // A token for another subject opens nothing here.
  const other = hs256(claims({ allow: [allowSubjects(["elsewhere"], ["pub", "sub"])] }));
  assert.equal((await refusedUpgrade(`?apiKey=${other}`)).status, 403);
  shutdown(c);
  shutdown(writer);
});
