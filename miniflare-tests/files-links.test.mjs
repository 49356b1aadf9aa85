// Signed file links on real workerd: made with the API key, honoured without it for their one
// file, method and lifetime; Range, conditional and HEAD requests through them; uploads within
// their limits; every altered, expired, misused or foreign link refused with 403; key rotation.
//
// Run: bash scripts/build-worker.sh && node_modules/.bin/node --test miniflare-tests/files-links.test.mjs

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { assertError, filesRequest } from "./files-client.mjs";
import { startServer, tempDir, TEST_KEY } from "./server.mjs";
import { claims, hs256, TOKEN_SECRET } from "./tokens.mjs";

const SIGNING_KEY = "a".repeat(64);
const OTHER_SIGNING_KEY = "b".repeat(64);
const CONTENT = "0123456789abcdefghij"; // 20 bytes

let server;

before(async () => {
  server = await startServer({ secrets: { LINK_SIGNING_KEY: SIGNING_KEY } });
  await files(server, "/links/file.txt", { method: "PUT", body: CONTENT, headers: { "content-type": "text/plain" } });
  await files(server, "/links/other.txt", { method: "PUT", body: "another file" });
});

after(async () => {
  await server?.stop();
});

const files = filesRequest;

/** A request to a link, as a browser would send it: no API key. */
function follow(url, { headers = {}, ...init } = {}) {
  return fetch(url, { ...init, headers: { "accept-encoding": "identity", ...headers } });
}

async function makeLink(target, key, request) {
  const res = await files(target, `/${key}?link`, { method: "POST", body: JSON.stringify(request) });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text);
}

/** The link with one query parameter replaced. */
function withParam(url, name, value) {
  const changed = new URL(url);
  changed.searchParams.set(name, value);
  return changed.href;
}

describe("download links", () => {
  let link;

  before(async () => {
    link = await makeLink(server, "links/file.txt", { ttl: 3600 });
  });

  test("the answer names the URL, its expiry and its method", () => {
    assert.equal(link.method, "GET");
    const expires = Date.parse(link.expires);
    assert.ok(Math.abs(expires - (Date.now() + 3_600_000)) < 10 * 60_000, link.expires);
    const url = new URL(link.url);
    assert.equal(url.origin, server.url);
    assert.equal(url.pathname, "/v1/files/links/file.txt");
    assert.deepEqual([...url.searchParams.keys()], ["method", "expires", "signature"]);
    assert.equal(url.searchParams.get("expires"), String(expires / 1000));
    assert.doesNotMatch(link.url, new RegExp(TEST_KEY), "the API key is not in the link");
  });

  test("GET without any other credential serves the file", async () => {
    const res = await follow(link.url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/plain");
    assert.equal(await res.text(), CONTENT);
  });

  test("Range, If-Range, If-None-Match and HEAD work through the link", async () => {
    const ranged = await follow(link.url, { headers: { range: "bytes=5-9" } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get("content-range"), "bytes 5-9/20");
    assert.equal(await ranged.text(), "56789");
    const etag = ranged.headers.get("etag");
    const resumed = await follow(link.url, { headers: { range: "bytes=10-", "if-range": etag } });
    assert.equal(resumed.status, 206);
    assert.equal(await resumed.text(), "abcdefghij");
    const unchanged = await follow(link.url, { headers: { "if-none-match": etag } });
    assert.equal(unchanged.status, 304);
    const head = await follow(link.url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), "20");
    assert.equal(await head.text(), "");
  });

  test("another method is refused with 403", async () => {
    await assertError(await follow(link.url, { method: "PUT", body: "overwrite" }), 403, "forbidden", /allows GET and HEAD, not PUT/);
    await assertError(await follow(link.url, { method: "DELETE" }), 403, "forbidden", /not DELETE/);
    assert.equal(await (await files(server, "/links/file.txt")).text(), CONTENT, "the file is untouched");
  });

  test("the link used on another key is refused with 403", async () => {
    const elsewhere = link.url.replace("/links/file.txt?", "/links/other.txt?");
    await assertError(await follow(elsewhere), 403, "forbidden", /does not match/);
  });

  test("a tampered signature, expiry or method is refused with 403", async () => {
    const signature = new URL(link.url).searchParams.get("signature");
    const flipped = signature.slice(0, -1) + (signature.endsWith("0") ? "1" : "0");
    await assertError(await follow(withParam(link.url, "signature", flipped)), 403, "forbidden", /does not match/);
    const later = String(Number(new URL(link.url).searchParams.get("expires")) + 86_400);
    await assertError(await follow(withParam(link.url, "expires", later)), 403, "forbidden", /does not match/);
    const asPut = withParam(link.url, "method", "PUT");
    await assertError(await follow(asPut, { method: "PUT", body: "x" }), 403, "forbidden", /does not match/);
    await assertError(await follow(withParam(link.url, "signature", "zz")), 403, "forbidden", /malformed/);
  });

  test("an expired link is refused with 403", async () => {
    const short = await makeLink(server, "links/file.txt", { ttl: 1 });
    assert.equal((await follow(short.url)).status, 200);
    // Expiry is a point in time: wait until it has passed, then the link must be refused.
    const expires = Date.parse(short.expires);
    while (Date.now() < expires + 1000) await new Promise((resolve) => setTimeout(resolve, 250));
    await assertError(await follow(short.url), 403, "forbidden", /expired/);
  });

  test("a link from a server with another signing key is refused with 403", async () => {
    const other = await startServer({ secrets: { LINK_SIGNING_KEY: OTHER_SIGNING_KEY } });
    try {
      await files(other, "/links/file.txt", { method: "PUT", body: CONTENT });
      const foreign = link.url.replace(server.url, other.url);
      await assertError(await follow(foreign), 403, "forbidden", /does not match/);
    } finally {
      await other.stop();
    }
  });

  test("without a link or a key the file stays closed (401)", async () => {
    const bare = new URL(link.url);
    bare.search = "";
    await assertError(await follow(bare.href), 401, "unauthorized");
  });
});

describe("upload links", () => {
  test("PUT through a link stores the file; its content type and size limits hold", async () => {
    const link = await makeLink(server, "links/upload.csv", { ttl: 600, method: "PUT", contentType: "text/csv", maxBytes: 10 });
    assert.equal(link.method, "PUT");
    await assertError(
      await follow(link.url, { method: "PUT", body: "a,b", headers: { "content-type": "text/plain" } }),
      403,
      "forbidden",
      /only Content-Type "text\/csv"/,
    );
    await assertError(
      await follow(link.url, { method: "PUT", body: "0123456789,", headers: { "content-type": "text/csv" } }),
      413,
      "too_large",
      /limit is 10/,
    );
    const stored = await follow(link.url, { method: "PUT", body: "a,b\n1,2\n", headers: { "content-type": "text/csv" } });
    assert.equal(stored.status, 201, await stored.clone().text());
    assert.equal((await stored.json()).size, 8);
    await assertError(await follow(link.url), 403, "forbidden", /allows PUT, not GET/);
    const got = await files(server, "/links/upload.csv");
    assert.equal(got.headers.get("content-type"), "text/csv");
    assert.equal(await got.text(), "a,b\n1,2\n");
  });

  test("an upload link without Content-Length keeps to maxBytes while streaming", async () => {
    const link = await makeLink(server, "links/streamed.bin", { ttl: 600, method: "PUT", maxBytes: 5 });
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("more than five bytes"));
        controller.close();
      },
    });
    await assertError(await follow(link.url, { method: "PUT", body, duplex: "half" }), 413, "too_large", /limit is 5/);
    const listed = await (await files(server, "?uploads&prefix=links/")).json();
    assert.deepEqual(listed.uploads, []);
  });
});

describe("making links", () => {
  test("needs the API key", async () => {
    const res = await fetch(`${server.url}/v1/files/links/file.txt?link`, { method: "POST", body: '{"ttl":60}' });
    await assertError(res, 401, "unauthorized");
  });

  for (const [body, pattern] of [
    ['{"ttl":0}', /`ttl` must be a number of seconds from 1 to 604800/],
    ['{"ttl":604801}', /`ttl`/],
    ['{"method":"GET"}', /missing field `ttl`/],
    ['{"ttl":60,"method":"DELETE"}', /not a link request/],
    ['{"ttl":60,"maxBytes":5}', /go with "method":"PUT"/],
    ['{"ttl":60,"ttl":61}', /duplicate key/],
    ["", /malformed JSON/],
  ]) {
    test(`${JSON.stringify(body)} is refused with 400`, async () => {
      await assertError(await files(server, "/links/file.txt?link", { method: "POST", body }), 400, "bad_request", pattern);
    });
  }

  test("a link request with GET is refused with 400 naming the operation", async () => {
    await assertError(await files(server, "/links/file.txt?link"), 400, "bad_request", /\?link.*POST/);
  });

  test("without LINK_SIGNING_KEY links are neither made nor honoured (fail closed)", async () => {
    const persist = tempDir("persist-");
    const unsigned = await startServer({ persist });
    try {
      await assertError(
        await files(unsigned, "/links/file.txt?link", { method: "POST", body: '{"ttl":60}' }),
        403,
        "forbidden",
        /no LINK_SIGNING_KEY/,
      );
      const link = await makeLink(server, "links/file.txt", { ttl: 60 });
      await assertError(await follow(link.url.replace(server.url, unsigned.url)), 403, "forbidden", /no LINK_SIGNING_KEY/);
    } finally {
      await unsigned.stop();
    }
  });

  test("a rotated key keeps the links it signed valid as LINK_SIGNING_KEY_PREVIOUS", async () => {
    const persist = tempDir("persist-");
    let rotating = await startServer({ persist, secrets: { LINK_SIGNING_KEY: SIGNING_KEY } });
    try {
      await files(rotating, "/links/file.txt", { method: "PUT", body: CONTENT });
      const old = await makeLink(rotating, "links/file.txt", { ttl: 600 });
      await rotating.stop();
      rotating = await startServer({ persist, secrets: { LINK_SIGNING_KEY: OTHER_SIGNING_KEY, LINK_SIGNING_KEY_PREVIOUS: SIGNING_KEY } });
      const moved = (url) => url.replace(new URL(url).origin, rotating.url);
      assert.equal(await (await follow(moved(old.url))).text(), CONTENT);
      const fresh = await makeLink(rotating, "links/file.txt", { ttl: 600 });
      assert.equal(await (await follow(fresh.url)).text(), CONTENT);
      await rotating.stop();
      rotating = await startServer({ persist, secrets: { LINK_SIGNING_KEY: OTHER_SIGNING_KEY } });
      await assertError(await follow(moved(old.url)), 403, "forbidden", /does not match/);
      assert.equal(await (await follow(moved(fresh.url))).text(), CONTENT);
    } finally {
      await rotating.stop();
    }
  });
});

describe("with an access token", () => {
  let tokenServer;
  const reader = hs256(claims({ ttl: 600, allow: [{ files: "shared/", actions: ["files:read"] }] }));
  const writer = hs256(claims({ ttl: 600, allow: [{ files: "shared/", actions: ["files:read", "files:write"] }] }));
  const withToken = (token, path, init = {}) =>
    fetch(`${tokenServer.url}/v1/files${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });

  before(async () => {
    tokenServer = await startServer({ secrets: { LINK_SIGNING_KEY: SIGNING_KEY, TOKEN_SECRET } });
    await files(tokenServer, "/shared/doc.txt", { method: "PUT", body: CONTENT });
  });

  after(async () => {
    await tokenServer?.stop();
  });

  test("a link allows no more than the token, and ends with it", async () => {
    const res = await withToken(reader, "/shared/doc.txt?link", { method: "POST", body: '{"ttl":604800}' });
    assert.equal(res.status, 200, await res.clone().text());
    const link = await res.json();
    assert.ok(Date.parse(link.expires) <= Date.now() + 600_000 + 5_000, `${link.expires} is past the token's expiry`);
    assert.equal(await (await follow(link.url)).text(), CONTENT);
    const upload = await withToken(reader, "/shared/doc.txt?link", { method: "POST", body: '{"ttl":60,"method":"PUT"}' });
    await assertError(upload, 403, "forbidden", /files:write/);
    await assertError(await withToken(reader, "/other/doc.txt?link", { method: "POST", body: '{"ttl":60}' }), 403, "forbidden", /files:read/);
  });

  test("uploads in parts need files:write, even to list the parts", async () => {
    await assertError(await withToken(reader, "/shared/big.bin?uploads", { method: "POST" }), 403, "forbidden", /files:write/);
    const created = await withToken(writer, "/shared/big.bin?uploads", { method: "POST" });
    assert.equal(created.status, 201);
    const { uploadId } = await created.json();
    const at = `/shared/big.bin?uploadId=${encodeURIComponent(uploadId)}`;
    await assertError(await withToken(reader, at), 403, "forbidden", /files:write/);
    assert.equal((await withToken(writer, at)).status, 200);
    const listed = await withToken(reader, "?uploads&prefix=shared/");
    assert.equal(listed.status, 200, "listing uploads needs what listing files needs");
    assert.deepEqual((await listed.json()).uploads.map((u) => u.uploadId), [uploadId]);
    assert.equal((await withToken(writer, at, { method: "DELETE" })).status, 204);
  });
});
