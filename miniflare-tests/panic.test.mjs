// A Rust panic on real workerd, in the Worker and in a subject's Durable Object: the request
// that panicked gets a JSON 500 `internal` error (with CORS headers, without any detail of the
// panic), the log has the panic's message and location, and the next requests work, with the
// subject's data intact.
//
// Needs the test-only routes GET /test/panic and /test/panic/{subject}, which only a test build has:
// DSTREAM_TEST_FEATURES=test-hooks bash scripts/build-worker.sh
// Run: node_modules/.bin/node --test miniflare-tests/panic.test.mjs

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startServer, TEST_KEY } from "./server.mjs";
import { uniqueSubject, until } from "./ws-client.mjs";

const AUTH = { authorization: `Bearer ${TEST_KEY}` };
const ORIGIN = "https://app.example";

let server;
// The panic's log lines are Worker console output, which wrangler prints only at log level.
before(async () => {
  server = await startServer({ log: true });
});
after(() => server?.stop());

async function panicOnce(place = "") {
  const res = await fetch(`${server.url}/test/panic${place}`, { headers: { ...AUTH, origin: ORIGIN } });
  const text = await res.text();
  assert.notEqual(res.status, 404, "GET /test/panic is missing: build with DSTREAM_TEST_FEATURES=test-hooks");
  return { res, text };
}

/** The server's log without terminal colours. */
const log = () => server.output().replace(/\x1b\[[0-9;]*m/g, "");

function assertInternalError({ res, text }) {
  assert.equal(res.status, 500);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  assert.deepEqual(JSON.parse(text), { error: { code: "internal", message: "internal error" } });
}

test("a panic in the Worker: a JSON internal error without details, and the log says where", async () => {
  assertInternalError(await panicOnce());
  await until(() => /panicked at src\/lib\.rs:\d+:\d+:\s+panic requested by a test\b/.test(log()), 5_000, "the panic in the log");
});

test("a panic in a subject's Durable Object: a JSON internal error, and the subject keeps its data", async () => {
  const subject = uniqueSubject("object-panic");
  const published = await fetch(`${server.url}/v1/stream/${subject}`, { method: "POST", headers: AUTH, body: "1" });
  assert.equal(published.status, 201);
  assertInternalError(await panicOnce(`/${subject}`));
  await until(() => /panicked at src\/subject\/http_api\.rs:\d+:\d+:\s+panic requested by a test in a subject's object/.test(log()), 5_000, "the panic in the log");
  const again = await fetch(`${server.url}/v1/stream/${subject}`, { method: "POST", headers: AUTH, body: "2" });
  assert.deepEqual(await again.json(), { seq: 2 });
});

test("after panics the Worker and the subjects' Durable Objects serve again, every time", async () => {
  const subject = uniqueSubject("after-panic");
  for (let round = 1; round <= 3; round++) {
    assertInternalError(await panicOnce(round % 2 ? "" : `/${subject}`));
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    const published = await fetch(`${server.url}/v1/stream/${subject}`, { method: "POST", headers: AUTH, body: JSON.stringify({ round }) });
    const text = await published.text();
    assert.equal(published.status, 201, text);
    assert.deepEqual(JSON.parse(text), { seq: round });
  }
  const page = await fetch(`${server.url}/v1/stream/${subject}/messages?from=1`, { headers: AUTH });
  assert.deepEqual((await page.json()).messages.map((m) => m.data), [{ round: 1 }, { round: 2 }, { round: 3 }]);
});
