// Strict input on real workerd: message data and state documents that standard parsers cannot
// read (too deep, numbers beyond a double, lone surrogate escapes, duplicate keys) are refused
// with `bad_request` on every surface — WebSocket `pub` (single and batch) and `state.put`, HTTP
// publish (single and batch) and state PUT, Durable Streams JSON appends and creates — and
// nothing of a refused request is stored. Also: repeated frame fields and query parameters,
// and numeric request ids beyond 2^53.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "./server.mjs";
import { uniqueSubject } from "./ws-client.mjs";
import { serverPerFile } from "./harness.mjs";
import { AUTH, httpCall } from "./http-client.mjs";

const harness = serverPerFile();
const { open } = harness;

const nested = (depth) => "[".repeat(depth) + "]".repeat(depth);

/**
 * Data no standard parser reads as sent, each with what its error message must contain. The
 * far too deep one (60 KB, within the state limit) would overflow a recursive parser's stack.
 */
const POISON = [
  ["too deep", nested(65), "nested more than 64 deep"],
  ["far too deep", nested(30_000), "nested more than 64 deep"],
  ["number beyond a double", '{"n":1e400}', "out of range"],
  ["negative number beyond a double", "[-1e400]", "out of range"],
  ["400-digit integer", "1" + "0".repeat(400), "out of range"],
  ["lone high surrogate", '"\\ud800"', "lone UTF-16 surrogate"],
  ["lone low surrogate", '{"k":"x\\udc00"}', "lone UTF-16 surrogate"],
  ["duplicate key", '{"a":1,"b":2,"a":3}', 'duplicate key "a"'],
  ["duplicate key written as an escape", '{"a":1,"\\u0061":2}', 'duplicate key "a"'],
];

const call = (method, path, options) => httpCall(harness.server, method, path, options);

function assertBadRequest(res, messagePart) {
  assert.equal(res.status, 400, res.text.slice(0, 300));
  assert.equal(res.json?.error?.code, "bad_request", res.text.slice(0, 300));
  assert.ok(res.json.error.message.includes(messagePart), `${res.json.error.message} should mention ${messagePart}`);
}

/** Sends a frame as raw text and waits for the reply with this id. */
async function rawRequest(c, text, id) {
  const since = c.frames.length;
  c.send(text);
  return c.nextFrame((f) => (f.op === "ok" || f.op === "err") && f.id === id, { since, timeout: 10_000, what: `reply ${id}` });
}

function assertErr(reply, id, messagePart) {
  assert.equal(reply.op, "err", JSON.stringify(reply));
  assert.equal(reply.code, "bad_request", JSON.stringify(reply));
  assert.deepEqual(reply.id, id);
  assert.ok(reply.message.includes(messagePart), `${reply.message.slice(0, 300)} should mention ${messagePart}`);
}

describe("WebSocket", () => {
  test("pub refuses poison data, single or in a batch, stores nothing and stays usable", async () => {
    const subject = uniqueSubject("strict-pub");
    const c = await open(subject);
    for (const [what, data, part] of POISON) {
      assertErr(await rawRequest(c, `{"op":"pub","id":"one","data":${data}}`, "one"), "one", part);
      const batch = await rawRequest(c, `{"op":"pub","id":"batch","batch":[{"fine":1},${data}]}`, "batch");
      assertErr(batch, "batch", part);
      assert.ok(batch.message.startsWith("`batch[1]`: "), `${what}: ${batch.message.slice(0, 200)}`);
    }
    assert.equal((await c.ok({ op: "info" })).last, 0, "nothing was stored");
    // Right at the limits is fine: 64 levels, the largest double, a surrogate pair, distinct keys.
    const fine = `{"op":"pub","id":"fine","batch":[${nested(64)},1.7976931348623157e308,"\\ud83d\\ude00",{"a":1,"A":1}]}`;
    assert.equal((await rawRequest(c, fine, "fine")).last, 4);
    await c.ok({ op: "sub", from: "first" });
    await c.waitForMessages(4);
    assert.deepEqual(c.msgs.map((m) => m.raw), [nested(64), "1.7976931348623157e308", '"\\ud83d\\ude00"', '{"a":1,"A":1}']);
  });

  test("state.put refuses poison state and keeps the old document", async () => {
    const c = await open(uniqueSubject("strict-state"));
    assert.equal((await c.ok({ op: "state.put", state: { v: 1 } })).version, 1);
    for (const [, state, part] of POISON) {
      assertErr(await rawRequest(c, `{"op":"state.put","id":"s","state":${state}}`, "s"), "s", part);
    }
    assert.deepEqual(await c.ok({ op: "state.get", id: "g" }), { op: "ok", id: "g", version: 1, state: { v: 1 } });
  });

  test("a frame field given twice is refused, naming the field", async () => {
    const subject = uniqueSubject("strict-fields");
    const c = await open(subject);
    const reply = await rawRequest(c, '{"op":"pub","id":"m","msgId":"a","msgId":"b","data":1}', "m");
    assertErr(reply, "m", "field `msgId` is given more than once");
    assertErr(await rawRequest(c, '{"op":"pub","id":"d","data":1,"data":2}', "d"), "d", "field `data` is given more than once");
    const since = c.frames.length;
    c.send('{"op":"info","id":1,"id":2}');
    assertErr(await c.nextFrame((f) => f.op === "err", { since }), null, "field `id` is given more than once");
    assert.equal((await c.ok({ op: "info" })).last, 0);
  });

  test("numeric request ids beyond 2^53 - 1 are refused instead of echoed rounded", async () => {
    const c = await open(uniqueSubject("strict-id"));
    for (const id of ["9007199254740992", "18446744073709551616", "1e300"]) {
      const since = c.frames.length;
      c.send(`{"op":"info","id":${id}}`);
      assertErr(await c.nextFrame((f) => f.op === "err", { since }), null, "between -9007199254740991 and 9007199254740991");
    }
    assert.equal((await c.request({ op: "info", id: 9007199254740991 })).id, 9007199254740991);
  });
});

test("100,000 levels of nesting are refused on WebSocket, HTTP and /ds, and the server carries on", async () => {
  const subject = uniqueSubject("strict-100k");
  const deep = nested(100_000);
  const c = await open(subject);
  // One message makes the subject a JSON stream for /ds too.
  assert.equal((await c.ok({ op: "pub", data: 1 })).seq, 1);
  assertErr(await rawRequest(c, `{"op":"pub","id":"deep","data":${deep}}`, "deep"), "deep", "nested more than 64 deep");
  assertBadRequest(await call("POST", `/v1/stream/${subject}`, { body: deep }), "nested more than 64 deep");
  const ds = await call("POST", `/ds/v1/stream/${subject}`, { body: `{"v":${deep}}`, headers: { "content-type": "application/json" } });
  assertBadRequest(ds, "nested more than 64 deep");
  assert.equal((await c.ok({ op: "pub", data: 2 })).seq, 2);
});

describe("HTTP stream API", () => {
  test("publish refuses poison data, single or batch, and stores nothing", async () => {
    const subject = uniqueSubject("strict-http");
    for (const [, data, part] of POISON) {
      assertBadRequest(await call("POST", `/v1/stream/${subject}`, { body: data }), part);
      const batch = await call("POST", `/v1/stream/${subject}?batch=1`, { body: `[1,${data}]` });
      assertBadRequest(batch, part);
      assert.ok(batch.json.error.message.startsWith("`body[1]`: "), batch.json.error.message.slice(0, 200));
    }
    assert.equal((await call("GET", `/v1/stream/${subject}`)).json.last, 0);
    assert.equal((await call("POST", `/v1/stream/${subject}`, { body: '{"ok":true}' })).status, 201);
  });

  test("state PUT refuses poison state and keeps the old document", async () => {
    const subject = uniqueSubject("strict-http-state");
    assert.equal((await call("PUT", `/v1/stream/${subject}/state`, { body: "[1]" })).status, 200);
    for (const [, state, part] of POISON) {
      assertBadRequest(await call("PUT", `/v1/stream/${subject}/state`, { body: state }), part);
    }
    const state = await call("GET", `/v1/stream/${subject}/state`);
    assert.equal(state.text, "[1]");
    assert.equal(state.headers.get("etag"), '"1"');
  });

  test("a query parameter given twice is refused, naming it", async () => {
    const subject = uniqueSubject("strict-query");
    const read = await call("GET", `/v1/stream/${subject}/messages?from=1&limit=5&from=2`);
    assertBadRequest(read, "query parameter `from` is given more than once");
    assertBadRequest(await call("POST", `/v1/stream/${subject}?batch=1&batch=0`, { body: "[1]" }), "`batch` is given more than once");
    assertBadRequest(await call("DELETE", `/v1/stream/${subject}/messages?upto=1&upto=2`), "`upto` is given more than once");
    assertBadRequest(await call("GET", "/v1/files?limit=1&limit=2"), "query parameter `limit` is given more than once");
    assert.equal((await call("GET", `/v1/stream/${subject}`)).json.last, 0);
  });
});

describe("Durable Streams (/ds)", () => {
  const JSON_TYPE = { "content-type": "application/json" };

  test("JSON appends refuse poison values and append nothing", async () => {
    const path = `/ds/v1/stream/${uniqueSubject("strict-ds")}`;
    assert.equal((await call("PUT", path, { headers: JSON_TYPE })).status, 201);
    for (const [, data, part] of POISON) {
      // Not `data` itself: a top-level array is flattened (its elements are the messages).
      assertBadRequest(await call("POST", path, { body: `{"v":${data}}`, headers: JSON_TYPE }), part);
      const array = await call("POST", path, { body: `[1,${data}]`, headers: JSON_TYPE });
      assertBadRequest(array, part);
      assert.ok(array.json.error.message.startsWith("`body[1]`: "), array.json.error.message.slice(0, 200));
    }
    const head = await call("HEAD", path);
    assert.equal(head.headers.get("stream-next-offset"), `${"0".repeat(16)}_${"0".repeat(16)}`);
    assert.equal((await call("POST", path, { body: '{"ok":1}', headers: JSON_TYPE })).status, 204);
  });

  test("a create whose initial body is poison creates nothing", async () => {
    const path = `/ds/v1/stream/${uniqueSubject("strict-ds-create")}`;
    assertBadRequest(await call("PUT", path, { body: '{"a":1,"a":2}', headers: JSON_TYPE }), "duplicate key");
    assert.equal((await call("HEAD", path)).status, 404);
  });

  test("a read parameter given twice is refused; integer headers name their real bound", async () => {
    const path = `/ds/v1/stream/${uniqueSubject("strict-ds-params")}`;
    assert.equal((await call("PUT", path, { headers: JSON_TYPE })).status, 201);
    const twice = await call("GET", `${path}?offset=-1&live=long-poll&live=sse`);
    assertBadRequest(twice, "query parameter `live` is given more than once");
    const producer = { ...JSON_TYPE, "producer-id": "p", "producer-epoch": "0", "producer-seq": "9007199254740992" };
    assertBadRequest(await call("POST", path, { body: "1", headers: producer }), "Producer-Seq must be an integer from 0 to 9007199254740991");
  });

  test("byte streams store bytes, not JSON, and are not checked", async () => {
    const path = `/ds/v1/stream/${uniqueSubject("strict-ds-text")}`;
    const text = { "content-type": "text/plain" };
    assert.equal((await call("PUT", path, { headers: text })).status, 201);
    assert.equal((await call("POST", path, { body: '{"a":1,"a":2}', headers: text })).status, 204);
    assert.equal((await call("GET", `${path}?offset=-1`)).text, '{"a":1,"a":2}');
  });
});

test("MAX_JSON_DEPTH sets the nesting limit", async () => {
  const server = await startServer({ vars: { MAX_JSON_DEPTH: "3" } });
  try {
    const publish = (body) => fetch(`${server.url}/v1/stream/${uniqueSubject("depth")}`, { method: "POST", headers: AUTH, body });
    assert.equal((await publish('{"a":[{"b":1}]}')).status, 201);
    const refused = await publish('{"a":[{"b":[]}]}');
    assert.equal(refused.status, 400);
    const { error } = await refused.json();
    assert.ok(error.message.includes("nested more than 3 deep (the limit is 3, MAX_JSON_DEPTH)"), error.message);
  } finally {
    await server.stop();
  }
});
