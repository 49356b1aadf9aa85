// Routing and authentication of the WebSocket endpoint on real workerd: the API-key matrix
// (missing, wrong, each accepted form, unset on the server), subject validation, unknown
// routes and /health. Every error answer must be JSON.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, TEST_KEY } from "./server.mjs";
import { WsClient, rawUpgrade, streamUrl } from "./ws-client.mjs";

let server;
let keyless;

before(async () => {
  [server, keyless] = await Promise.all([startServer(), startServer({ apiKey: null })]);
});
after(async () => {
  await Promise.all([server?.stop(), keyless?.stop()]);
});

/** Asserts a JSON error response: status, code, a message, and no stack trace. */
function assertJsonError(res, status, code) {
  assert.equal(res.status, status, `status of ${JSON.stringify(res.body)}`);
  assert.match(String(res.headers["content-type"]), /^application\/json/);
  const body = JSON.parse(res.body);
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, "string");
  assert.ok(body.error.message.length > 0);
  assert.doesNotMatch(res.body, /panicked|RuntimeError|\.rs:\d|at .*\(|wasm-function/i, "no internals in the body");
  return body;
}

async function get(url, headers = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
}

describe("health", () => {
  test("GET /health needs no key and reports ok and the version", async () => {
    for (const s of [server, keyless]) {
      const res = await get(`${s.url}/health`);
      assert.equal(res.status, 200);
      assert.match(res.headers["content-type"], /^application\/json/);
      const body = JSON.parse(res.body);
      assert.equal(body.ok, true);
      assert.equal(typeof body.version, "string");
      assert.match(body.version, /^\d+\.\d+\.\d+/);
    }
  });
});

describe("API key on the WebSocket upgrade", () => {
  const path = "/v1/stream/auth-subject";

  test("no key: 401 unauthorized JSON", async () => {
    const res = await rawUpgrade(`${server.url}${path}`);
    const body = assertJsonError(res, 401, "unauthorized");
    assert.match(body.error.message, /missing/i);
  });

  test("wrong key in each form: 401, and the key is not echoed", async () => {
    const wrong = "wrong-key-123";
    for (const [how, url, headers] of [
      ["bearer", `${server.url}${path}`, { Authorization: `Bearer ${wrong}` }],
      ["x-api-key", `${server.url}${path}`, { "X-API-Key": wrong }],
      ["query", `${server.url}${path}?apiKey=${wrong}`, {}],
      ["prefix of the key", `${server.url}${path}?apiKey=${TEST_KEY.slice(0, -1)}`, {}],
      ["key plus a suffix", `${server.url}${path}`, { "X-API-Key": `${TEST_KEY}x` }],
      ["empty bearer", `${server.url}${path}`, { Authorization: "Bearer " }],
      ["basic scheme", `${server.url}${path}`, { Authorization: `Basic ${TEST_KEY}` }],
    ]) {
      const res = await rawUpgrade(url, headers);
      const body = assertJsonError(res, 401, "unauthorized");
      assert.ok(!res.body.includes(wrong), `${how}: key echoed`);
      assert.ok(body.error.message.length > 0, how);
    }
  });

  test("a right key with a wrong one beside it is refused", async () => {
    const res = await rawUpgrade(`${server.url}${path}?apiKey=${TEST_KEY}`, { "X-API-Key": "nope" });
    assertJsonError(res, 401, "unauthorized");
    const res2 = await rawUpgrade(`${server.url}${path}`, { Authorization: `Bearer ${TEST_KEY}`, "X-API-Key": "nope" });
    assertJsonError(res2, 401, "unauthorized");
  });

  test("each accepted form upgrades (101) and says hello", async () => {
    for (const [how, url, headers] of [
      ["bearer", `${server.url}${path}`, { Authorization: `Bearer ${TEST_KEY}` }],
      ["bearer, lower-case scheme", `${server.url}${path}`, { Authorization: `bearer ${TEST_KEY}` }],
      ["x-api-key", `${server.url}${path}`, { "X-API-Key": TEST_KEY }],
      ["query", `${server.url}${path}?apiKey=${TEST_KEY}`, {}],
      ["all three", `${server.url}${path}?apiKey=${TEST_KEY}`, { Authorization: `Bearer ${TEST_KEY}`, "X-API-Key": TEST_KEY }],
    ]) {
      const res = await rawUpgrade(url, headers);
      assert.equal(res.status, 101, `${how}: ${res.body}`);
      assert.equal(res.hello.op, "hello", how);
      assert.equal(res.hello.subject, "auth-subject", how);
    }
  });

  test("Node's WebSocket with ?apiKey= connects; without it the handshake fails", async () => {
    const c = await WsClient.connect(streamUrl(server, "auth-ws"));
    assert.equal(c.hello.subject, "auth-ws");
    const info = await c.ok({ op: "info" });
    assert.equal(info.connections, 1);
    c.close();
    await assert.rejects(WsClient.connect(streamUrl(server, "auth-ws", null), { timeout: 5000 }));
    await assert.rejects(WsClient.connect(streamUrl(server, "auth-ws", "bad"), { timeout: 5000 }));
  });

  test("API_KEY unset on the server: every request is refused, even with a key", async () => {
    for (const [url, headers] of [
      [`${keyless.url}${path}`, {}],
      [`${keyless.url}${path}?apiKey=${TEST_KEY}`, {}],
      [`${keyless.url}${path}`, { Authorization: `Bearer ${TEST_KEY}` }],
      [`${keyless.url}${path}`, { "X-API-Key": TEST_KEY }],
      [`${keyless.url}${path}?apiKey=`, { "X-API-Key": "" }],
    ]) {
      const res = await rawUpgrade(url, headers);
      const body = assertJsonError(res, 401, "unauthorized");
      assert.match(body.error.message, /no API key configured/);
    }
    const plain = await get(`${keyless.url}${path}?apiKey=${TEST_KEY}`);
    assertJsonError(plain, 401, "unauthorized");
  });
});

describe("routing", () => {
  test("invalid subjects: 400 JSON", async () => {
    for (const subject of [
      "",
      "a".repeat(129),
      "a%20b",
      "caf%C3%A9",
      "a:b",
      "a*b",
      "a%2Fb",
      "a+b",
    ]) {
      const res = await rawUpgrade(`${server.url}/v1/stream/${subject}?apiKey=${TEST_KEY}`);
      const body = assertJsonError(res, 400, "bad_request");
      assert.match(body.error.message, /subject/, subject);
    }
  });

  test("the longest valid subject and every allowed character are accepted", async () => {
    for (const subject of ["a".repeat(128), "Az09._~-"]) {
      const res = await rawUpgrade(`${server.url}/v1/stream/${subject}?apiKey=${TEST_KEY}`);
      assert.equal(res.status, 101, res.body);
      assert.equal(res.hello.subject, subject);
    }
  });

  test("an invalid subject without a key is refused as unauthorized first", async () => {
    const res = await rawUpgrade(`${server.url}/v1/stream/a:b`);
    assertJsonError(res, 401, "unauthorized");
  });

  test("unknown routes: 404 JSON, with or without a key", async () => {
    for (const path of ["/", "/nope", "/v1", "/v1/streams/x", "/v2/stream/x", "/health/x"]) {
      for (const headers of [{}, { "X-API-Key": TEST_KEY }]) {
        const res = await get(`${server.url}${path}`, headers);
        assertJsonError(res, 404, "not_found");
      }
    }
    const upgrade = await rawUpgrade(`${server.url}/nope?apiKey=${TEST_KEY}`);
    assertJsonError(upgrade, 404, "not_found");
  });
});
