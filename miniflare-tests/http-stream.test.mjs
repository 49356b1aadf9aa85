// The HTTP stream API on real workerd: publish, pages, long-poll, info, trim, delete, state,
// and its interplay with WebSocket subscribers on the same subject.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, TEST_KEY } from "./server.mjs";
import { connect, uniqueSubject, sleep } from "./ws-client.mjs";
import { httpCall } from "./http-client.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const call = (method, path, options) => httpCall(server, method, path, options);

const publish = (subject, data, headers) => call("POST", `/v1/stream/${subject}`, { body: JSON.stringify(data), headers });

function assertError(res, status, code, messagePart) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.json.error.code, code);
  assert.equal(typeof res.json.error.message, "string");
  if (messagePart) assert.match(res.json.error.message, messagePart);
}

test("publish answers 201 with consecutive sequences, batches are contiguous", async () => {
  const s = uniqueSubject("pub");
  assert.deepEqual((await publish(s, { n: 1 })).json, { seq: 1 });
  const second = await publish(s, "two");
  assert.equal(second.status, 201);
  assert.deepEqual(second.json, { seq: 2 });
  const batch = await call("POST", `/v1/stream/${s}?batch=1`, { body: '[1, {"x": 2.50}, null]' });
  assert.equal(batch.status, 201);
  assert.deepEqual(batch.json, { seq: 3, last: 5 });
  const page = await call("GET", `/v1/stream/${s}/messages?from=1`);
  assert.equal(page.status, 200);
  assert.deepEqual(page.json.messages.map((m) => [m.seq, m.data]), [[1, { n: 1 }], [2, "two"], [3, 1], [4, { x: 2.5 }], [5, null]]);
  // Data comes back byte for byte as published.
  assert.ok(page.text.includes('"data":{"x": 2.50}'), page.text);
  assert.equal(page.json.next, 6);
  assert.equal(page.json.last, 5);
  assert.ok(page.json.messages.every((m) => Number.isInteger(m.ts) && m.ts > 1.7e12));
});

test("Idempotency-Key makes a publish happen once", async () => {
  const s = uniqueSubject("idem");
  const first = await publish(s, { order: 1 }, { "idempotency-key": "order-1" });
  assert.deepEqual([first.status, first.json], [201, { seq: 1 }]);
  const again = await publish(s, { order: 1 }, { "idempotency-key": "order-1" });
  assert.deepEqual([again.status, again.json], [200, { seq: 1, duplicate: true }]);
  const batch = await call("POST", `/v1/stream/${s}?batch=1`, { body: "[1,2]", headers: { "idempotency-key": "b" } });
  const batchAgain = await call("POST", `/v1/stream/${s}?batch=1`, { body: "[1,2]", headers: { "idempotency-key": "b" } });
  assert.deepEqual(batch.json, { seq: 2, last: 3 });
  assert.deepEqual([batchAgain.status, batchAgain.json], [200, { seq: 2, last: 3, duplicate: true }]);
  const info = await call("GET", `/v1/stream/${s}`);
  assert.equal(info.json.count, 3);
  assertError(await publish(s, 1, { "idempotency-key": "k".repeat(257) }), 400, "bad_request", /msgId/);
  // Sent twice, the header arrives as "a, b": refused, not taken as a key a proxy would not see.
  const twice = new Headers({ authorization: `Bearer ${TEST_KEY}` });
  twice.append("idempotency-key", "order-2");
  twice.append("idempotency-key", "order-3");
  const refused = await fetch(`${server.url}/v1/stream/${s}`, { method: "POST", headers: twice, body: "1" });
  assert.equal(refused.status, 400);
  assert.match((await refused.json()).error.message, /Idempotency-Key must be sent once/);
  assert.equal((await call("GET", `/v1/stream/${s}`)).json.count, 3, "nothing stored");
});

test("bad publish bodies get 400 or 413 and store nothing", async () => {
  const s = uniqueSubject("badpub");
  assertError(await call("POST", `/v1/stream/${s}`, { body: "{nope" }), 400, "bad_request", /not JSON/);
  // An empty body (curl -X POST without -d) says so, and what to send.
  assertError(await call("POST", `/v1/stream/${s}`, { body: "" }), 400, "bad_request", /^body is empty: the message must be JSON, e\.g\. \{"order":17\}$/);
  assertError(await call("POST", `/v1/stream/${s}`, { body: " \n" }), 400, "bad_request", /^body is empty/);
  assertError(await call("POST", `/v1/stream/${s}?batch=1`, { body: '{"a":1}' }), 400, "bad_request", /array/);
  assertError(await call("POST", `/v1/stream/${s}?batch=1`, { body: "[]" }), 400, "bad_request", /empty/);
  assertError(await call("POST", `/v1/stream/${s}?batch=1`, { body: JSON.stringify(Array(1001).fill(1)) }), 413, "too_large", /1000/);
  assertError(await call("POST", `/v1/stream/${s}`, { body: JSON.stringify("x".repeat(1_100_000)) }), 413, "too_large", /limit is 1048576/);
  assertError(await call("POST", `/v1/stream/${s}?batch=maybe`, { body: "1" }), 400, "bad_request", /batch/);
  assertError(await call("POST", `/v1/stream/${s}?bacth=1`, { body: "1" }), 400, "bad_request", /unknown query parameter `bacth`/);
  const info = await call("GET", `/v1/stream/${s}`);
  assert.equal(info.json.last, 0);
});

test("an oversized body is answered 413 and the request after it goes through", async () => {
  // Answered before its body was read, a request left its connection unusable: wrangler dev's
  // proxy reused it and failed the next request ("Network connection lost") once in ~30.
  const s = uniqueSubject("oversized");
  for (let i = 0; i < 40; i++) {
    assertError(await call("POST", `/v1/stream/${s}`, { body: JSON.stringify("x".repeat(1_100_000)) }), 413, "too_large", /limit is 1048576/);
    const next = await call("POST", `/v1/stream/${s}`, { body: String(i) });
    assert.deepEqual([next.status, next.json], [201, { seq: i + 1 }], `request ${i} after a 413`);
  }
});

test("pages are bounded by limit and continue with next", async () => {
  const s = uniqueSubject("page");
  await call("POST", `/v1/stream/${s}?batch=1`, { body: JSON.stringify(Array.from({ length: 250 }, (_, i) => i)) });
  const seen = [];
  let from = 0;
  for (let round = 0; round < 10; round++) {
    const page = await call("GET", `/v1/stream/${s}/messages?from=${from}&limit=100`);
    assert.equal(page.status, 200);
    if (page.json.messages.length === 0) break;
    assert.ok(page.json.messages.length <= 100);
    seen.push(...page.json.messages.map((m) => m.seq));
    from = page.json.next;
  }
  assert.deepEqual(seen, Array.from({ length: 250 }, (_, i) => i + 1));
  const defaultPage = await call("GET", `/v1/stream/${s}/messages`);
  assert.equal(defaultPage.json.messages.length, 100);
  assert.equal(defaultPage.json.messages[0].seq, 1);
  const future = await call("GET", `/v1/stream/${s}/messages?from=999`);
  assert.deepEqual(future.json, { messages: [], next: 999, last: 250 });
});

test("bad query numbers are refused with 400", async () => {
  const s = uniqueSubject("query");
  for (const query of ["from=-1", "from=abc", "from=1.5", "limit=0", "limit=1001", "limit=abc", "wait=61", "wait=-1", "nope=1"]) {
    assertError(await call("GET", `/v1/stream/${s}/messages?${query}`), 400, "bad_request");
  }
  for (const query of ["", "upto=x", "upto=-3", "upto=9007199254740992"]) {
    assertError(await call("DELETE", `/v1/stream/${s}/messages?${query}`), 400, "bad_request");
  }
});

test("a long-poll answers as soon as a message is published, and times out empty", async () => {
  const s = uniqueSubject("poll");
  await publish(s, "first");
  const started = Date.now();
  const waiting = call("GET", `/v1/stream/${s}/messages?from=2&wait=20`);
  await sleep(500);
  await publish(s, "second");
  const page = await waiting;
  const took = Date.now() - started;
  assert.equal(page.status, 200);
  assert.deepEqual(page.json.messages.map((m) => m.data), ["second"]);
  assert.ok(took < 5_000, `long-poll took ${took} ms`);

  const quiet = Date.now();
  const empty = await call("GET", `/v1/stream/${s}/messages?from=3&wait=1`);
  assert.deepEqual(empty.json, { messages: [], next: 3, last: 2 });
  assert.ok(Date.now() - quiet >= 900, "wait=1 returned early");
});

test("a message published over HTTP reaches a live WebSocket subscriber with the same sequence", async () => {
  const s = uniqueSubject("mixed");
  const ws = await connect(server, s);
  try {
    await ws.ok({ op: "sub", from: "new" });
    const published = await publish(s, { via: "http" });
    await ws.waitForMessages(1);
    assert.equal(ws.msgs[0].seq, published.json.seq);
    assert.deepEqual(ws.msgs[0].data, { via: "http" });
    // And the other way: a WebSocket publish is readable over HTTP.
    const reply = await ws.ok({ op: "pub", data: { via: "ws" } });
    const page = await call("GET", `/v1/stream/${s}/messages?from=${reply.seq}`);
    assert.deepEqual(page.json.messages.map((m) => m.data), [{ via: "ws" }]);
  } finally {
    ws.close();
  }
});

test("info, trim and sequence numbers that are never reused", async () => {
  const s = uniqueSubject("trim");
  await call("POST", `/v1/stream/${s}?batch=1`, { body: "[1,2,3,4,5]" });
  const info = await call("GET", `/v1/stream/${s}`);
  assert.equal(info.status, 200);
  assert.equal(info.json.subject, s);
  assert.deepEqual([info.json.first, info.json.last, info.json.count, info.json.bytes], [1, 5, 5, 5]);
  assert.equal(typeof info.json.epoch, "string");
  const trimmed = await call("DELETE", `/v1/stream/${s}/messages?upto=3`);
  assert.deepEqual(trimmed.json, { first: 4, last: 5, deleted: 3 });
  const all = await call("DELETE", `/v1/stream/${s}/messages?upto=100`);
  assert.deepEqual(all.json, { first: 6, last: 5, deleted: 2 });
  assert.deepEqual((await publish(s, "after")).json, { seq: 6 });
  const page = await call("GET", `/v1/stream/${s}/messages?from=0`);
  assert.deepEqual(page.json.messages.map((m) => m.seq), [6]);
});

test("deleting a subject closes its sockets with 4001 and starts a new epoch", async () => {
  const s = uniqueSubject("wipe");
  await publish(s, 1);
  await call("PUT", `/v1/stream/${s}/state`, { body: '{"k":1}' });
  const ws = await connect(server, s);
  const oldEpoch = ws.hello.epoch;
  await ws.ok({ op: "sub", from: "first", consumer: "c1" });
  const wiped = await call("DELETE", `/v1/stream/${s}`);
  assert.equal(wiped.status, 200);
  assert.equal(wiped.json.deleted, true);
  assert.notEqual(wiped.json.epoch, oldEpoch);
  const closed = await ws.waitClosed();
  assert.equal(closed.code, 4001);
  const info = await call("GET", `/v1/stream/${s}`);
  assert.deepEqual([info.json.first, info.json.last, info.json.count, info.json.consumers, info.json.epoch], [1, 0, 0, 0, wiped.json.epoch]);
  const state = await call("GET", `/v1/stream/${s}/state`);
  assert.deepEqual([state.text, state.headers.get("etag")], ["null", '"0"']);
  assert.deepEqual((await publish(s, "again")).json, { seq: 1 });
  const fresh = await connect(server, s);
  assert.equal(fresh.hello.epoch, wiped.json.epoch);
  fresh.close();
});

test("state: ETag, If-Match compare-and-set, 412 on a stale version", async () => {
  const s = uniqueSubject("state");
  const empty = await call("GET", `/v1/stream/${s}/state`);
  assert.deepEqual([empty.status, empty.text, empty.headers.get("etag")], [200, "null", '"0"']);
  const put = await call("PUT", `/v1/stream/${s}/state`, { body: '{"cursor":"a"}', headers: { "if-match": '"0"' } });
  assert.deepEqual([put.status, put.json, put.headers.get("etag")], [200, { version: 1 }, '"1"']);
  const stale = await call("PUT", `/v1/stream/${s}/state`, { body: '{"cursor":"b"}', headers: { "if-match": '"0"' } });
  assertError(stale, 412, "conflict", /version is 1/);
  const blind = await call("PUT", `/v1/stream/${s}/state`, { body: '{"cursor":"c"}' });
  assert.deepEqual(blind.json, { version: 2 });
  const star = await call("PUT", `/v1/stream/${s}/state`, { body: '{"cursor":"d"}', headers: { "if-match": "*" } });
  assert.deepEqual(star.json, { version: 3 });
  const got = await call("GET", `/v1/stream/${s}/state`);
  assert.deepEqual([got.json, got.headers.get("etag")], [{ cursor: "d" }, '"3"']);
  assertError(await call("PUT", `/v1/stream/${s}/state`, { body: "{bad" }), 400, "bad_request", /not JSON/);
  assertError(await call("PUT", `/v1/stream/${s}/state`, { body: "" }), 400, "bad_request", /^body is empty: the state must be JSON/);
  assertError(await call("PUT", `/v1/stream/${s}/state`, { body: "1", headers: { "if-match": "three" } }), 400, "bad_request", /If-Match/);
  assertError(await call("PUT", `/v1/stream/${s}/state`, { body: JSON.stringify("x".repeat(70_000)) }), 413, "too_large");
  // The WebSocket side sees the same document and version.
  const ws = await connect(server, s);
  const viaWs = await ws.ok({ op: "state.get" });
  assert.deepEqual([viaWs.state, viaWs.version], [{ cursor: "d" }, 3]);
  ws.close();
});

test("wrong methods get 405 with Allow, unknown paths 404", async () => {
  const s = uniqueSubject("methods");
  for (const [method, path, allow] of [
    ["PUT", `/v1/stream/${s}`, "GET, POST, DELETE, OPTIONS"],
    ["POST", `/v1/stream/${s}/messages`, "GET, DELETE, OPTIONS"],
    ["DELETE", `/v1/stream/${s}/state`, "GET, PUT, OPTIONS"],
  ]) {
    const res = await call(method, path, { body: method === "GET" ? undefined : "1" });
    assertError(res, 405, "bad_request", /method not allowed/);
    assert.equal(res.headers.get("allow"), allow);
  }
  assertError(await call("GET", `/v1/stream/${s}/other`), 404, "not_found");
  assertError(await call("GET", `/v2/anything`), 404, "not_found");
  assertError(await call("GET", `/v1/stream/bad%20subject`), 400, "bad_request", /subject/);
  assertError(await call("GET", `/v1/stream/${"x".repeat(129)}`), 400, "bad_request", /subject/);
});

test("every stream route demands the API key in one of its three forms", async () => {
  const s = uniqueSubject("auth");
  const routes = [
    ["POST", `/v1/stream/${s}`, "1"],
    ["GET", `/v1/stream/${s}`],
    ["GET", `/v1/stream/${s}/messages`],
    ["DELETE", `/v1/stream/${s}/messages?upto=0`],
    ["GET", `/v1/stream/${s}/state`],
    ["PUT", `/v1/stream/${s}/state`, "{}"],
  ];
  const sep = (path) => (path.includes("?") ? "&" : "?");
  for (const [method, path, body] of routes) {
    const none = await fetch(`${server.url}${path}`, { method, body });
    assert.equal(none.status, 401, `${method} ${path} without a key`);
    assert.equal((await none.json()).error.code, "unauthorized");
    const wrong = await fetch(`${server.url}${path}`, { method, body, headers: { authorization: "Bearer nope" } });
    assert.equal(wrong.status, 401, `${method} ${path} with a wrong key`);
    for (const [label, init, url] of [
      ["bearer", { headers: { authorization: `Bearer ${TEST_KEY}` } }, path],
      ["x-api-key", { headers: { "x-api-key": TEST_KEY } }, path],
      ["query", {}, `${path}${sep(path)}apiKey=${TEST_KEY}`],
    ]) {
      const res = await fetch(`${server.url}${url}`, { method, body, ...init });
      assert.ok(res.status < 400, `${method} ${path} with ${label}: ${res.status} ${await res.text()}`);
    }
  }
  const health = await fetch(`${server.url}/health`);
  assert.deepEqual(await health.json(), { ok: true, protocol: 1, version: "0.1.0" });
});
