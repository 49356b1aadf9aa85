// Methods and CORS on real workerd: every route refuses the methods it does not serve (exotic
// ones like PROPFIND included, which workers-rs alone would treat as GET) with 405, `Allow` and a
// JSON error, without touching or returning anything; preflights are answered without a key;
// every answer, errors included, carries the CORS headers for an allowed origin and none for
// another.
//
// Run: bash scripts/build-worker.sh && node_modules/.bin/node --test miniflare-tests/methods-cors.test.mjs

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { startServer, TEST_KEY } from "./server.mjs";
import { connect, uniqueSubject, until } from "./ws-client.mjs";

const AUTH = { authorization: `Bearer ${TEST_KEY}` };
const ALLOWED_ORIGIN = "https://app.example";
const OTHER_ORIGIN = "https://elsewhere.example";

/** Methods no route serves (CONNECT never reaches a Worker). */
const EXOTIC = ["PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "PURGE", "SEARCH", "QUERY", "REPORT", "ACL", "PATCH", "TRACE"];

/** Any method, any headers (fetch refuses some methods); resolves to status, headers, text. */
function send(base, method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const req = request(
      { host: url.hostname, port: url.port, method, path: url.pathname + url.search, headers: { ...headers, "accept-encoding": "identity" } },
      (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      },
    );
    // A WebSocket upgrade that should not have happened ends the request as a 101.
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, text: "" });
    });
    req.on("error", reject);
    req.end(body);
  });
}

function assertMethodNotAllowed(res, allow, what, method = "") {
  assert.equal(res.status, 405, `${what}: ${res.text}`);
  assert.equal(res.headers.allow, allow, what);
  assert.equal(res.headers["content-type"], "application/json", what);
  if (method === "HEAD") return assert.equal(res.text, "", what); // a HEAD answer has no body
  const body = JSON.parse(res.text);
  assert.equal(body.error.code, "bad_request", what);
  assert.match(body.error.message, /method not allowed/, what);
}

describe("methods", () => {
  let server;
  const subject = uniqueSubject("methods");
  const fileKey = `methods/${subject}.txt`;
  const fileBody = "the file's secret contents";

  before(async () => {
    server = await startServer();
    const put = await send(server.url, "PUT", `/v1/files/${fileKey}`, { headers: { ...AUTH, "content-type": "text/plain" }, body: fileBody });
    assert.equal(put.status, 201, put.text);
    const publish = await send(server.url, "POST", `/v1/stream/${subject}`, { headers: AUTH, body: '{"n":1}' });
    assert.equal(publish.status, 201, publish.text);
    const state = await send(server.url, "PUT", `/v1/stream/${subject}/state`, { headers: AUTH, body: '{"v":1}' });
    assert.equal(state.status, 200, state.text);
  });
  after(() => server?.stop());

  const routes = () => [
    { path: "/health", allow: "GET, HEAD, OPTIONS", unserved: ["POST", "PUT", "DELETE"] },
    { path: "/v1/files", allow: "GET, OPTIONS", unserved: ["HEAD", "POST", "PUT", "DELETE"] },
    { path: `/v1/files/${fileKey}`, allow: "GET, HEAD, PUT, POST, DELETE, OPTIONS", unserved: [] },
    { path: `/v1/stream/${subject}`, allow: "GET, POST, DELETE, OPTIONS", unserved: ["HEAD", "PUT"] },
    { path: `/v1/stream/${subject}/messages`, allow: "GET, DELETE, OPTIONS", unserved: ["HEAD", "POST", "PUT"] },
    { path: `/v1/stream/${subject}/messages/1`, allow: "GET, OPTIONS", unserved: ["HEAD", "POST", "PUT", "DELETE"] },
    { path: `/v1/stream/${subject}/messages/last`, allow: "GET, OPTIONS", unserved: ["HEAD", "POST", "PUT", "DELETE"] },
    { path: `/v1/stream/${subject}/state`, allow: "GET, PUT, OPTIONS", unserved: ["HEAD", "POST", "DELETE"] },
    { path: `/ds/v1/stream/${subject}`, allow: "GET, HEAD, PUT, POST, DELETE, OPTIONS", unserved: [] },
    { path: `/v1/stream/${subject}/consumers`, allow: "GET, OPTIONS", unserved: ["HEAD", "POST", "PUT", "DELETE"] },
    { path: `/v1/stream/${subject}/consumers/c`, allow: "PUT, DELETE, OPTIONS", unserved: ["GET", "HEAD", "POST"] },
    { path: "/v1/subjects", allow: "GET, OPTIONS", unserved: ["HEAD", "POST", "PUT", "DELETE"] },
    { path: "/metrics", allow: "GET, OPTIONS", unserved: ["HEAD", "POST", "PUT", "DELETE"] },
    { path: `/stream/${subject}`, allow: "GET, OPTIONS", unserved: ["HEAD", "POST", "PUT", "DELETE"] },
    { path: `/r2/${fileKey}`, allow: "GET, HEAD, POST, DELETE, OPTIONS", unserved: ["PUT"] },
  ];

  test("every route answers 405 with Allow and a JSON error to every method it does not serve", async () => {
    for (const { path, allow, unserved } of routes()) {
      for (const method of [...EXOTIC, ...unserved]) {
        const res = await send(server.url, method, path, { headers: AUTH, body: method === "PUT" || method === "POST" ? "{}" : undefined });
        assertMethodNotAllowed(res, allow, `${method} ${path}`, method);
        assert.ok(!res.text.includes(fileBody), `${method} ${path} returned the file`);
      }
    }
  });

  test("the method is checked before the key: a refused method reveals nothing else", async () => {
    const res = await send(server.url, "PROPFIND", `/v1/files/${fileKey}`);
    assertMethodNotAllowed(res, "GET, HEAD, PUT, POST, DELETE, OPTIONS", "PROPFIND without a key");
  });

  test("an exotic method asking for a WebSocket upgrade is not upgraded; a GET upgrade still is", async () => {
    // workerd itself refuses an upgrade with another method than GET (400) before the Worker runs.
    for (const headers of [{ upgrade: "websocket" }, { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" }]) {
      const res = await send(server.url, "PROPFIND", `/v1/stream/${subject}`, { headers: { ...AUTH, ...headers } });
      assert.equal(res.status, 400, res.text);
    }
    const socket = await connect(server, subject);
    try {
      assert.equal(socket.hello.last, 1);
    } finally {
      socket.close();
    }
  });

  test("refused methods changed nothing, and the served methods still work", async () => {
    const file = await send(server.url, "GET", `/v1/files/${fileKey}`, { headers: AUTH });
    assert.equal(file.status, 200);
    assert.equal(file.text, fileBody);
    const info = JSON.parse((await send(server.url, "GET", `/v1/stream/${subject}`, { headers: AUTH })).text);
    assert.equal(info.last, 1);
    assert.equal(info.count, 1);
    const state = await send(server.url, "GET", `/v1/stream/${subject}/state`, { headers: AUTH });
    assert.equal(state.headers.etag, '"1"');
    assert.equal(state.text, '{"v":1}');
    const ds = await send(server.url, "GET", `/ds/v1/stream/${subject}?offset=-1`, { headers: AUTH });
    assert.equal(ds.status, 200);
    assert.deepEqual(JSON.parse(ds.text), [{ n: 1 }]);
    const health = await send(server.url, "HEAD", "/health");
    assert.equal(health.status, 200);
  });

  test("unknown paths are 404 whatever the method", async () => {
    for (const [method, path] of [["GET", "/v1/nothing"], ["PROPFIND", "/v1/stream/x/acks"], ["OPTIONS", "/ds/v2"]]) {
      const res = await send(server.url, method, path, { headers: AUTH });
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(JSON.parse(res.text).error.code, "not_found");
    }
  });
});

describe("CORS with the default configuration (any origin)", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.stop());

  test("a preflight on /v1 is answered 204 without a key, with the route's methods and the API's headers", async () => {
    const subject = uniqueSubject("cors");
    const res = await send(server.url, "OPTIONS", `/v1/stream/${subject}`, {
      headers: { origin: ALLOWED_ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type, idempotency-key" },
    });
    assert.equal(res.status, 204, res.text);
    assert.equal(res.headers["access-control-allow-origin"], "*");
    assert.equal(res.headers["access-control-allow-methods"], "GET, POST, DELETE, OPTIONS");
    const allowed = res.headers["access-control-allow-headers"].split(", ");
    for (const header of ["authorization", "x-api-key", "content-type", "idempotency-key", "expected-last-seq", "nats-expected-last-sequence", "if-match", "range"]) {
      assert.ok(allowed.includes(header), header);
    }
    assert.equal(res.headers["access-control-allow-credentials"], undefined);
    assert.equal(res.headers["access-control-max-age"], "86400");
  });

  test("a preflight on /v1/files allows uploads with metadata", async () => {
    const res = await send(server.url, "OPTIONS", "/v1/files/page/upload.bin", {
      headers: { origin: ALLOWED_ORIGIN, "access-control-request-method": "PUT", "access-control-request-headers": "content-type, content-disposition" },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers["access-control-allow-methods"], "GET, HEAD, PUT, POST, DELETE, OPTIONS");
    assert.match(res.headers["access-control-allow-headers"], /content-disposition/);
  });

  test("answers and errors carry the CORS headers, and expose what the API returns", async () => {
    const subject = uniqueSubject("cors");
    const state = await send(server.url, "GET", `/v1/stream/${subject}/state`, { headers: { ...AUTH, origin: ALLOWED_ORIGIN } });
    assert.equal(state.status, 200);
    assert.equal(state.headers["access-control-allow-origin"], "*");
    const exposed = state.headers["access-control-expose-headers"].split(", ");
    for (const header of ["etag", "content-range", "location", "allow", "retry-after", "stream-next-offset"]) {
      assert.ok(exposed.includes(header), header);
    }
    const refused = await send(server.url, "GET", `/v1/stream/${subject}`, { headers: { origin: ALLOWED_ORIGIN } });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers["access-control-allow-origin"], "*");
    assert.equal(JSON.parse(refused.text).error.code, "unauthorized");
    const missing = await send(server.url, "GET", "/v1/files/no/such/file", { headers: { ...AUTH, origin: ALLOWED_ORIGIN } });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers["access-control-allow-origin"], "*");
  });

  test("the /ds mount keeps its preflight and headers", async () => {
    const res = await send(server.url, "OPTIONS", `/ds/v1/stream/${uniqueSubject("cors")}`, {
      headers: { origin: ALLOWED_ORIGIN, "access-control-request-method": "GET", "access-control-request-headers": "if-none-match" },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers["access-control-allow-origin"], "*");
    assert.match(res.headers["access-control-allow-headers"], /if-none-match/);
    const missing = await send(server.url, "GET", `/ds/v1/stream/${uniqueSubject("cors")}`, { headers: { ...AUTH, origin: ALLOWED_ORIGIN } });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers["access-control-allow-origin"], "*");
    assert.equal(missing.headers["x-content-type-options"], "nosniff");
  });
});

describe("CORS with an allow-list", () => {
  let server;
  before(async () => {
    server = await startServer({ vars: { CORS_ALLOWED_ORIGINS: `${ALLOWED_ORIGIN}, http://localhost:5173` } });
  });
  after(() => server?.stop());

  const preflight = (origin) =>
    send(server.url, "OPTIONS", "/v1/files/list-test.txt", {
      headers: { origin, "access-control-request-method": "GET", "access-control-request-headers": "authorization" },
    });

  test("an allowed origin is echoed, with Vary: Origin", async () => {
    const res = await preflight(ALLOWED_ORIGIN);
    assert.equal(res.status, 204);
    assert.equal(res.headers["access-control-allow-origin"], ALLOWED_ORIGIN);
    assert.match(res.headers.vary, /Origin/);
    const refused = await send(server.url, "GET", "/v1/files", { headers: { origin: ALLOWED_ORIGIN } });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers["access-control-allow-origin"], ALLOWED_ORIGIN);
  });

  test("another origin gets no CORS headers, so the browser keeps the answer from the page", async () => {
    const res = await preflight(OTHER_ORIGIN);
    assert.equal(res.status, 204);
    assert.equal(res.headers["access-control-allow-origin"], undefined);
    const listing = await send(server.url, "GET", "/v1/files", { headers: { ...AUTH, origin: OTHER_ORIGIN } });
    assert.equal(listing.status, 200);
    assert.equal(listing.headers["access-control-allow-origin"], undefined);
    assert.equal(listing.headers["access-control-expose-headers"], undefined);
    assert.match(listing.headers.vary, /Origin/);
  });
});

describe("CORS with an invalid allow-list", () => {
  let server;
  before(async () => {
    server = await startServer({ vars: { CORS_ALLOWED_ORIGINS: "https://app.example/" } });
  });
  after(() => server?.stop());

  test("no origin is allowed, and the log names the variable", async () => {
    const res = await send(server.url, "GET", "/v1/files", { headers: { ...AUTH, origin: ALLOWED_ORIGIN } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers["access-control-allow-origin"], undefined);
    await until(() => server.output().includes("invalid configuration variable CORS_ALLOWED_ORIGINS"));
  });
});
