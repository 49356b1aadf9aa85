// Message headers on real workerd: published over WebSocket (`pub` and batch entries) and HTTP
// (envelopes), returned on every read and delivery (live and catch-up `msg`/`msgs`, HTTP pages,
// `get`, GET …/messages/{seq}) exactly as stored; absent from messages without them; bounded by
// MAX_HEADERS and MAX_HEADER_BYTES (too_large, nothing stored); counted in bytes and byte
// retention. Headers across a restart and on tables from before headers: schema-migration.test.mjs.
//
// Run: bash scripts/build-worker.sh && node_modules/.bin/node --test miniflare-tests/headers.test.mjs

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "./server.mjs";
import { connect, uniqueSubject } from "./ws-client.mjs";
import { httpCall } from "./http-client.mjs";

/** A server for one describe block, and every connection it opened closed at the end. */
function serverFor(vars) {
  const context = { server: null, clients: [] };
  before(async () => {
    context.server = await startServer({ vars });
  });
  after(async () => {
    for (const c of context.clients) c.close();
    await context.server?.stop();
  });
  context.open = async (subject, label) => {
    const c = await connect(context.server, subject, { label });
    context.clients.push(c);
    return c;
  };
  context.call = (method, path, options) => httpCall(context.server, method, path, options);
  return context;
}

/** The exact text of every `"headers":…` in a JSON text, in order. */
function rawHeaders(text) {
  return [...text.matchAll(/"headers":(\{[^}]*\})/g)].map((m) => m[1]);
}

describe("headers round-trip", () => {
  const ctx = serverFor({});

  test("every surface returns what was published, and messages without headers carry no key", async () => {
    const s = uniqueSubject("round-trip");
    const live = await ctx.open(s, "live");
    await live.ok({ op: "sub", from: "first" });
    const w = await ctx.open(s, "writer");
    // Published with spaces and an escape: stored and sent as compact JSON, in the given order.
    w.send('{"op":"pub","id":1,"data":{"order":17},"headers":{ "type" : "OrderCreated", "trace-id":"t-\\u00e9-1" }}');
    await w.nextFrame((f) => f.id === 1, { since: 0 });
    await w.ok({ op: "pub", data: "plain" });
    await w.ok({ op: "pub", batch: [{ n: 1 }, { n: 2 }, { n: 3 }], headers: [{ type: "A" }, null, {}] });
    const envelope = await ctx.call("POST", `/v1/stream/${s}?envelope=1`, {
      body: JSON.stringify({ data: { via: "http" }, headers: { source: "webhook", "content-type": "application/json" } }),
    });
    assert.deepEqual([envelope.status, envelope.json], [201, { seq: 6 }]);
    const envelopes = await ctx.call("POST", `/v1/stream/${s}?envelope=1&batch=1`, {
      body: JSON.stringify([{ data: 7, headers: { n: "7" } }, { data: 8 }]),
    });
    assert.deepEqual([envelopes.status, envelopes.json], [201, { seq: 7, last: 8 }]);

    const expected = {
      1: '{"type":"OrderCreated","trace-id":"t-é-1"}',
      3: '{"type":"A"}',
      6: '{"source":"webhook","content-type":"application/json"}',
      7: '{"n":"7"}',
    };
    const check = (messages, where) => {
      assert.deepEqual(messages.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8], where);
      for (const m of messages) {
        const want = expected[m.seq];
        if (want) assert.deepEqual(m.headers, JSON.parse(want), `${where}: #${m.seq}`);
        else assert.ok(!("headers" in m), `${where}: #${m.seq} has no headers key`);
      }
    };

    // Live delivery (frames straight from the publish) and catch-up from storage.
    await live.waitForMessages(8);
    check(live.msgs, "live delivery");
    assert.deepEqual(live.msgs.map((m) => m.rawHeaders ?? null), [expected[1], null, expected[3], null, null, expected[6], expected[7], null]);
    const replay = await ctx.open(s, "replay");
    await replay.ok({ op: "sub", from: 1 });
    await replay.waitForMessages(8);
    check(replay.msgs, "catch-up");
    assert.deepEqual(replay.msgs.map((m) => m.rawHeaders ?? null), live.msgs.map((m) => m.rawHeaders ?? null));

    // HTTP pages.
    const page = await ctx.call("GET", `/v1/stream/${s}/messages?from=1`);
    check(page.json.messages, "HTTP page");
    assert.deepEqual(rawHeaders(page.text), [expected[1], expected[3], expected[6], expected[7]]);

    // One message: the get op and GET …/messages/{seq}.
    for (const seq of [1, 2, 6, "last"]) {
      const got = await w.request({ op: "get", seq });
      const one = await ctx.call("GET", `/v1/stream/${s}/messages/${seq}`);
      const want = expected[seq === "last" ? 8 : seq];
      assert.equal(rawHeaders(w.frames.at(-1).text)[0], want, `get ${seq}`);
      assert.equal(rawHeaders(one.text)[0], want, `GET messages/${seq}`);
      assert.deepEqual(one.json, { seq: got.seq, ts: got.ts, ...(want ? { headers: JSON.parse(want) } : {}), data: got.data });
    }
  });

  test("headers count in bytes", async () => {
    const s = uniqueSubject("bytes");
    const c = await ctx.open(s, "writer");
    await c.ok({ op: "pub", data: 1 });
    assert.equal((await c.ok({ op: "info" })).bytes, 1);
    await c.ok({ op: "pub", data: 2, headers: { k: "v" } });
    assert.equal((await c.ok({ op: "info" })).bytes, 2 + '{"k":"v"}'.length);
    await c.ok({ op: "trim", upto: 2 });
    assert.equal((await c.ok({ op: "info" })).bytes, 0, "trimming frees what headers took");
  });

  test("malformed headers are refused with the id echoed, and the connection stays usable", async () => {
    const s = uniqueSubject("malformed");
    const c = await ctx.open(s, "writer");
    const cases = [
      ['"headers":["a"],"data":1', /^`headers` must be an object of strings/],
      ['"headers":{"a":1},"data":1', /^`headers`: the value of "a" must be a string/],
      ['"headers":{"":"x"},"data":1', /^`headers`: a header name must not be empty/],
      ['"headers":{"a":"1","a":"2"},"data":1', /^`headers`: duplicate key "a"/],
      ['"headers":{"a":"\\ud800"},"data":1', /lone UTF-16 surrogate/],
      ['"headers":{"a":"1"},"batch":[1,2]', /^with `batch`, `headers` must be an array of 2 objects or nulls/],
      ['"headers":[null,{"a":[]}],"batch":[1,2]', /^`headers\[1\]`: the value of "a" must be a string/],
    ];
    for (const [fields, message] of cases) {
      const since = c.frames.length;
      c.send(`{"op":"pub","id":"bad",${fields}}`);
      const reply = await c.nextFrame((f) => f.id === "bad", { since });
      assert.deepEqual([reply.op, reply.code], ["err", "bad_request"], fields);
      assert.match(reply.message, message, fields);
    }
    for (const [body, message] of [
      ['{"data":1,"headers":{"a":2}}', /^`body.headers`: the value of "a" must be a string/],
      ['{"headers":{}}', /^`body` needs `data`/],
      ['{"data":1,"meta":{}}', /^`body`: unknown field `meta`/],
      ['[{"data":1}]', /^`body` must be an envelope/],
    ]) {
      const res = await ctx.call("POST", `/v1/stream/${s}?envelope=1`, { body });
      assert.equal(res.status, 400, body);
      assert.match(res.json.error.message, message, body);
    }
    assert.equal((await c.ok({ op: "pub", data: "still fine", headers: { ok: "yes" } })).seq, 1);
  });
});

describe("header limits and byte retention", () => {
  // Names and values: at most 2 headers and 40 bytes; messages (data and headers): 100 bytes.
  const ctx = serverFor({ MAX_HEADERS: "2", MAX_HEADER_BYTES: "40", RETENTION_MAX_BYTES: "100" });

  test("too many headers or bytes are refused with too_large on every surface, storing nothing", async () => {
    const s = uniqueSubject("limits");
    const c = await ctx.open(s, "writer");
    assert.equal((await c.ok({ op: "pub", data: 0, headers: { a: "1", b: "2" } })).seq, 1);
    assert.equal((await c.ok({ op: "pub", data: 0, headers: { name: "x".repeat(36) } })).seq, 2, "exactly 40 bytes");
    const refusals = [
      [{ op: "pub", data: 1, headers: { a: "1", b: "2", c: "3" } }, "`headers`: 3 headers; the limit is 2 (MAX_HEADERS)"],
      [{ op: "pub", data: 1, headers: { name: "x".repeat(37) } }, "`headers`: 41 bytes of names and values; the limit is 40 (MAX_HEADER_BYTES)"],
      [{ op: "pub", batch: [1, 2], headers: [null, { a: "1", b: "2", c: "3" }] }, "`headers[1]`: 3 headers; the limit is 2 (MAX_HEADERS)"],
    ];
    for (const [frame, message] of refusals) {
      const reply = await c.request({ ...frame, id: "big" });
      assert.deepEqual([reply.op, reply.id, reply.code, reply.message], ["err", "big", "too_large", message]);
    }
    const res = await ctx.call("POST", `/v1/stream/${s}?envelope=1&batch=1`, {
      body: JSON.stringify([{ data: 1 }, { data: 2, headers: { é: "x".repeat(39) } }]),
    });
    assert.equal(res.status, 413, res.text);
    assert.deepEqual(res.json.error, { code: "too_large", message: "`body[1].headers`: 41 bytes of names and values; the limit is 40 (MAX_HEADER_BYTES)" });
    assert.equal((await c.ok({ op: "info" })).last, 2, "nothing of the refused publishes was stored");
  });

  test("byte retention counts headers", async () => {
    const s = uniqueSubject("retention");
    const c = await ctx.open(s, "writer");
    const headers = { k: "x".repeat(30) }; // {"k":"xxx…"}: 38 bytes
    const size = 1 + JSON.stringify(headers).length;
    await c.ok({ op: "pub", data: 1, headers });
    await c.ok({ op: "pub", data: 2, headers });
    let info = await c.ok({ op: "info" });
    assert.deepEqual([info.first, info.count, info.bytes], [1, 2, 2 * size]);
    // A third one is over 100 bytes: the oldest goes, though the data alone is 3 bytes.
    await c.ok({ op: "pub", data: 3, headers });
    info = await c.ok({ op: "info" });
    assert.deepEqual([info.first, info.last, info.count, info.bytes], [2, 3, 2, 2 * size]);
  });
});
