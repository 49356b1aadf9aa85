// A subject and the Durable Streams JSON stream of the same name are one stream: the official
// @durable-streams/client reads live what a WebSocket publisher writes, a WebSocket subscriber
// receives what that client appends, and byte/text streams are refused on the WebSocket side.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { DurableStream } from "@durable-streams/client";
import { startServer, TEST_KEY } from "./server.mjs";
import { connect, uniqueSubject, until } from "./ws-client.mjs";

let server;
before(async () => {
  server = await startServer({ vars: { DS_LONG_POLL_MS: "2000" } });
});
after(async () => {
  await server?.stop();
});

const AUTH = { authorization: `Bearer ${TEST_KEY}` };
const offsetOf = (seq) => `${String(seq).padStart(16, "0")}_${"0".repeat(16)}`;
const handle = (subject, contentType) =>
  new DurableStream({ url: `${server.url}/ds/v1/stream/${subject}`, headers: AUTH, contentType });

for (const live of ["sse", "long-poll"]) {
  test(`the protocol client reads live (${live}) what a WebSocket publisher writes`, async () => {
    const subject = uniqueSubject(`ds-${live}`);
    const ws = await connect(server, subject);
    await ws.ok({ op: "pub", data: { n: 1 } });
    const res = await handle(subject).stream({ offset: "-1", live });
    const items = [];
    const stop = res.subscribeJson((batch) => {
      items.push(...batch.items);
    });
    try {
      await until(() => items.length === 1, 5_000, "the message published before the read");
      await ws.ok({ op: "pub", batch: [{ n: 2 }, "three", [4]] });
      await until(() => items.length === 4, 5_000, `the live messages (have ${JSON.stringify(items)})`);
      assert.deepEqual(items, [{ n: 1 }, { n: 2 }, "three", [4]]);
      // Offsets are the subject's sequence numbers.
      await until(() => res.offset === offsetOf(4), 5_000, `offset after seq 4 (is ${res.offset})`);
    } finally {
      stop();
      res.cancel();
      ws.close();
    }
  });
}

test("a WebSocket subscriber receives what the protocol client appends, with its sequences", async () => {
  const subject = uniqueSubject("ds-append");
  const stream = await DurableStream.create({
    url: `${server.url}/ds/v1/stream/${subject}`,
    headers: AUTH,
    contentType: "application/json",
  });
  const ws = await connect(server, subject);
  await ws.ok({ op: "sub", from: "first" });
  await stream.append(JSON.stringify({ hello: "ws" }));
  await stream.append(JSON.stringify([1, 2]));
  await ws.waitForMessages(2);
  assert.deepEqual(ws.msgs.map((m) => [m.seq, m.data]), [[1, { hello: "ws" }], [2, [1, 2]]]);
  // And the native HTTP API sees the same messages.
  const page = await (await fetch(`${server.url}/v1/stream/${subject}/messages?from=1`, { headers: AUTH })).json();
  assert.deepEqual(page.messages.map((m) => m.data), [{ hello: "ws" }, [1, 2]]);
  ws.close();
});

test("closing the stream over the protocol ends publishing on the WebSocket side", async () => {
  const subject = uniqueSubject("ds-close");
  const ws = await connect(server, subject);
  await ws.ok({ op: "pub", data: "before" });
  const close = await fetch(`${server.url}/ds/v1/stream/${subject}`, {
    method: "POST",
    headers: { ...AUTH, "stream-closed": "true" },
  });
  assert.equal(close.status, 204);
  assert.equal(close.headers.get("stream-next-offset"), offsetOf(1));
  const refused = await ws.request({ op: "pub", data: "after" });
  assert.equal(refused.op, "err");
  assert.equal(refused.code, "conflict");
  assert.match(refused.message, /closed/);
  ws.close();
});

test("byte and text streams are protocol-only: WebSocket frames get a conflict", async () => {
  const subject = uniqueSubject("ds-text");
  const created = await fetch(`${server.url}/ds/v1/stream/${subject}`, {
    method: "PUT",
    headers: { ...AUTH, "content-type": "text/plain" },
    body: "hello",
  });
  assert.equal(created.status, 201);
  const ws = await connect(server, subject);
  const refused = await ws.request({ op: "pub", data: "x" });
  assert.equal(refused.code, "conflict");
  assert.match(refused.message, /not JSON/);
  const native = await fetch(`${server.url}/v1/stream/${subject}/messages`, { headers: AUTH });
  assert.equal(native.status, 409);
  ws.close();
});

test("a subject created by a native publish is an existing JSON stream; deleting it closes its sockets", async () => {
  const subject = uniqueSubject("ds-implicit");
  const missing = await fetch(`${server.url}/ds/v1/stream/${subject}`, { method: "HEAD", headers: AUTH });
  assert.equal(missing.status, 404);
  await fetch(`${server.url}/v1/stream/${subject}`, { method: "POST", headers: AUTH, body: '{"x": 1}' });
  const again = await fetch(`${server.url}/ds/v1/stream/${subject}`, {
    method: "PUT",
    headers: { ...AUTH, "content-type": "application/json" },
  });
  assert.equal(again.status, 200);
  const conflict = await fetch(`${server.url}/ds/v1/stream/${subject}`, {
    method: "PUT",
    headers: { ...AUTH, "content-type": "text/plain" },
  });
  assert.equal(conflict.status, 409);
  const read = await fetch(`${server.url}/ds/v1/stream/${subject}`, { headers: AUTH });
  assert.equal(await read.text(), '[{"x": 1}]');
  const ws = await connect(server, subject);
  await ws.ok({ op: "info" });
  const deleted = await fetch(`${server.url}/ds/v1/stream/${subject}`, { method: "DELETE", headers: AUTH });
  assert.equal(deleted.status, 204);
  const closed = await ws.waitClosed();
  assert.equal(closed.code, 4001);
});

test("the /ds mount requires the API key, except for CORS preflights", async () => {
  const url = `${server.url}/ds/v1/stream/${uniqueSubject("ds-auth")}`;
  const anonymous = await fetch(url);
  assert.equal(anonymous.status, 401);
  assert.equal((await anonymous.json()).error.code, "unauthorized");
  assert.equal(anonymous.headers.get("x-content-type-options"), "nosniff");
  const preflight = await fetch(url, { method: "OPTIONS", headers: { origin: "https://example.com" } });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
  const badName = await fetch(`${server.url}/ds/v1/stream/a/../b`, { headers: AUTH });
  assert.ok([400, 404].includes(badName.status));
  const badOffset = await fetch(`${url}?offset=nope`, { headers: AUTH });
  assert.equal(badOffset.status, 400);
  assert.equal((await badOffset.json()).error.code, "bad_request");
});

describe("a native wipe (DELETE /v1/stream/{subject}) gives a fresh, open subject", () => {
  const ds = (subject, init = {}) =>
    fetch(`${server.url}/ds/v1/stream/${subject}`, { ...init, headers: { ...AUTH, ...init.headers } });
  const native = (subject, init = {}) =>
    fetch(`${server.url}/v1/stream/${subject}`, { ...init, headers: { ...AUTH, ...init.headers } });
  const wipe = async (subject) => {
    const res = await native(subject, { method: "DELETE" });
    assert.equal(res.status, 200, await res.clone().text());
    return res.json();
  };
  const publish = async (subject, body) => {
    const res = await native(subject, { method: "POST", body });
    return { status: res.status, body: await res.json() };
  };

  test("a subject closed over /ds is open again after a native wipe, under a new epoch", async () => {
    const subject = uniqueSubject("wipe-closed");
    assert.equal((await publish(subject, '"before"')).status, 201);
    const { epoch } = await (await native(subject)).json();
    assert.equal((await ds(subject, { method: "POST", headers: { "stream-closed": "true" } })).status, 204);
    const refused = await publish(subject, '"while closed"');
    assert.equal(refused.status, 409);
    assert.match(refused.body.error.message, /closed/);
    const wiped = await wipe(subject);
    assert.equal(wiped.deleted, true);
    assert.notEqual(wiped.epoch, epoch);
    assert.deepEqual((await publish(subject, '"after"')).body, { seq: 1 });
    // The protocol sees the same: an open JSON stream holding only the new message.
    const head = await ds(subject, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("stream-closed"), null);
    assert.equal(await (await ds(subject)).text(), '["after"]');
  });

  test("a byte stream is wiped into an ordinary JSON subject", async () => {
    const subject = uniqueSubject("wipe-text");
    const created = await ds(subject, { method: "PUT", headers: { "content-type": "text/plain" }, body: "hello" });
    assert.equal(created.status, 201);
    assert.equal((await publish(subject, '"json"')).status, 409);
    await wipe(subject);
    assert.equal((await ds(subject, { method: "HEAD" })).status, 404, "no stream until something is published");
    assert.deepEqual((await publish(subject, '{"n":1}')).body, { seq: 1 });
    const head = await ds(subject, { method: "HEAD" });
    assert.match(head.headers.get("content-type"), /application\/json/);
  });

  test("a source deleted over /ds while forked can be wiped at once, and its forks still count", async () => {
    const source = uniqueSubject("wipe-src");
    const fork = uniqueSubject("wipe-fork");
    await publish(source, '{"order":1}');
    const forked = await ds(fork, {
      method: "PUT",
      headers: { "stream-forked-from": `/v1/stream/${source}`, "stream-fork-offset": "0000000000000001_0000000000000000" },
    });
    assert.equal(forked.status, 201, await forked.text());
    assert.equal((await ds(source, { method: "DELETE" })).status, 204);
    assert.equal((await ds(source)).status, 410, "a tombstone while the fork exists");
    assert.equal((await publish(source, '"refused"')).status, 409);
    // Before: refused until the forks were deleted. Now the native wipe reopens it.
    await wipe(source);
    assert.deepEqual((await publish(source, '{"order":"new"}')).body, { seq: 1 });
    assert.equal(await (await ds(fork)).text(), '[{"order":1}]', "the fork keeps its copy");
    // The fork still holds a reference: deleting the source over /ds leaves a tombstone again,
    // and deleting the fork then removes it for good.
    assert.equal((await ds(source, { method: "DELETE" })).status, 204);
    assert.equal((await ds(source)).status, 410);
    assert.equal((await ds(fork, { method: "DELETE" })).status, 204);
    await until(async () => (await ds(source, { method: "HEAD" })).status === 404, 10_000, "the tombstone to go with its last fork");
  });

  test("wiping a fork releases its source", async () => {
    const source = uniqueSubject("wipe-src2");
    const fork = uniqueSubject("wipe-fork2");
    await publish(source, '"one"');
    const forked = await ds(fork, { method: "PUT", headers: { "stream-forked-from": `/v1/stream/${source}` } });
    assert.equal(forked.status, 201);
    await wipe(fork);
    // With no fork left, a protocol delete removes the source outright (no 410 tombstone).
    assert.equal((await ds(source, { method: "DELETE" })).status, 204);
    assert.equal((await ds(source, { method: "HEAD" })).status, 404);
  });
});
