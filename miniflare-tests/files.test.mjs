// The R2 file API (/v1/files) on real workerd: uploads, ranged and conditional reads, deletes,
// listings, size limits, malformed input and authentication (of every route, the routes of
// uploads in parts and links included). Uploads in parts: files-multipart.test.mjs; signed
// links: files-links.test.mjs.
//
// Run: bash scripts/build-worker.sh && node_modules/.bin/node --test miniflare-tests/files.test.mjs

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { assertError, assertJson, filesRequest, hashBody, seededBytes, sha256 } from "./files-client.mjs";
import { startServer, TEST_KEY } from "./server.mjs";

// Small enough to test the limit with a real upload, large enough for the 12 MiB file.
const MAX_FILE_BYTES = 16 * 1024 * 1024;
const ETAG_HEADER = /^"[0-9a-f]{32}"$/;

let server;

before(async () => {
  server = await startServer({ vars: { MAX_FILE_BYTES: String(MAX_FILE_BYTES) }, secrets: { LINK_SIGNING_KEY: "k".repeat(32) } });
});

after(async () => {
  await server?.stop();
});

const files = (path, init) => filesRequest(server, path, init);

async function put(key, body, headers = {}) {
  const res = await files(`/${key}`, { method: "PUT", body, headers });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return { res, body: JSON.parse(text) };
}

describe("upload and download", () => {
  test("PUT stores the bytes and HTTP metadata that GET serves back", async () => {
    const expires = "Wed, 21 Oct 2037 07:28:00 GMT";
    const { res, body } = await put("meta/report.txt", "hello, files", {
      "content-type": "text/plain; charset=utf-8",
      "content-language": "de",
      "content-disposition": 'attachment; filename="report.txt"',
      "cache-control": "max-age=60",
      expires,
    });
    const etag = res.headers.get("etag");
    assert.match(etag, ETAG_HEADER);
    assert.deepEqual(body, { key: "meta/report.txt", size: 12, etag: etag.slice(1, -1) });

    const got = await files("/meta/report.txt");
    assert.equal(got.status, 200);
    assert.equal(await got.text(), "hello, files");
    assert.equal(got.headers.get("etag"), etag);
    assert.equal(got.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(got.headers.get("content-length"), "12");
    assert.equal(got.headers.get("content-language"), "de");
    assert.equal(got.headers.get("content-disposition"), 'attachment; filename="report.txt"');
    assert.equal(got.headers.get("cache-control"), "max-age=60");
    assert.equal(got.headers.get("expires"), expires);
    assert.equal(got.headers.get("accept-ranges"), "bytes");
    const modified = Date.parse(got.headers.get("last-modified"));
    assert.ok(Math.abs(Date.now() - modified) < 10 * 60_000, `Last-Modified ${got.headers.get("last-modified")}`);
  });

  test("POST stores like PUT and a second upload replaces the file", async () => {
    const first = await files("/post/note", { method: "POST", body: "first" });
    assert.equal(first.status, 201);
    assert.equal((await first.json()).size, 5);
    const { res } = await put("post/note", "second version");
    assert.notEqual(res.headers.get("etag"), first.headers.get("etag"));
    const got = await files("/post/note");
    assert.equal(await got.text(), "second version");
    assert.equal(got.headers.get("etag"), res.headers.get("etag"));
  });

  test("a file uploaded without Content-Type is served as application/octet-stream", async () => {
    await put("plain/bytes.bin", new Uint8Array([0, 1, 2, 255]));
    const got = await files("/plain/bytes.bin");
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("content-type"), "application/octet-stream");
    assert.deepEqual(new Uint8Array(await got.arrayBuffer()), new Uint8Array([0, 1, 2, 255]));
  });

  test("an empty file round-trips, and any range on it is unsatisfiable", async () => {
    const { body } = await put("empty/file", "");
    assert.equal(body.size, 0);
    const got = await files("/empty/file");
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("content-length"), "0");
    assert.equal(await got.text(), "");
    const ranged = await files("/empty/file", { headers: { range: "bytes=-5" } });
    assert.equal(ranged.headers.get("content-range"), "bytes */0");
    await assertError(ranged, 416, "bad_request", /not satisfiable/);
  });

  test("a stored Content-Encoding is served as stored, not encoded a second time", async () => {
    const text = "compressible ".repeat(200);
    await put("encoded/page.txt", gzipSync(text), { "content-type": "text/plain", "content-encoding": "gzip" });
    const got = await files("/encoded/page.txt", { headers: { "accept-encoding": "gzip" } });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("content-encoding"), "gzip");
    assert.equal(await got.text(), text); // fetch decodes gzip once
  });

  test("a 12 MiB file streams up and down byte-exact", async () => {
    const size = 12 * 1024 * 1024;
    const data = seededBytes(size, 20251123);
    const chunk = 256 * 1024;
    let offset = 0;
    const upload = new ReadableStream({
      pull(controller) {
        if (offset >= size) return controller.close();
        controller.enqueue(data.subarray(offset, offset + chunk));
        offset += chunk;
      },
    });
    const res = await files("/large/random.bin", {
      method: "PUT",
      body: upload,
      duplex: "half",
      headers: { "content-length": String(size), "content-type": "application/x-test" },
    });
    const body = await assertJson(res, 201);
    assert.equal(body.size, size);

    const got = await files("/large/random.bin");
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("content-length"), String(size));
    assert.deepEqual(await hashBody(got), { length: size, digest: sha256(data) });

    // A range from the middle of the large file is exact too.
    const start = 5_000_000;
    const ranged = await files("/large/random.bin", { headers: { range: `bytes=${start}-${start + 99_999}` } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get("content-range"), `bytes ${start}-${start + 99_999}/${size}`);
    assert.equal(sha256(new Uint8Array(await ranged.arrayBuffer())), sha256(data.subarray(start, start + 100_000)));
  });

  test("a file over MAX_FILE_BYTES is refused with 413 and not stored", async () => {
    const res = await files("/limit/too-big", { method: "PUT", body: new Uint8Array(MAX_FILE_BYTES + 1) });
    await assertError(res, 413, "too_large", new RegExp(`limit is ${MAX_FILE_BYTES}`));
    await assertError(await files("/limit/too-big"), 404, "not_found");
  });

  test("a small upload without Content-Length (chunked) is stored in one put", async () => {
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("chunked body"));
        controller.close();
      },
    });
    const res = await files("/chunked/upload", { method: "PUT", body, duplex: "half", headers: { "content-type": "text/plain" } });
    const stored = await assertJson(res, 201);
    assert.equal(stored.size, 12);
    assert.match(res.headers.get("etag"), ETAG_HEADER, "a single put's etag (a multipart one ends in -N)");
    const got = await files("/chunked/upload");
    assert.equal(got.headers.get("content-type"), "text/plain");
    assert.equal(await got.text(), "chunked body");
  });

  test("an invalid Expires header is refused with 400", async () => {
    const res = await files("/meta/bad-expires", { method: "PUT", body: "x", headers: { expires: "not a date" } });
    await assertError(res, 400, "bad_request", /Expires/);
  });
});

describe("ranges", () => {
  const content = "0123456789abcdefghij"; // 20 bytes
  let etag;

  before(async () => {
    etag = (await put("ranges/twenty", content, { "content-type": "text/plain" })).res.headers.get("etag");
  });

  const served = [
    { range: "bytes=0-4", part: "01234", first: 0, last: 4 },
    { range: "bytes=15-", part: "fghij", first: 15, last: 19 },
    { range: "bytes=-3", part: "hij", first: 17, last: 19 },
    { range: "bytes=18-100", part: "ij", first: 18, last: 19 }, // end clipped to the size
    { range: "bytes=-100", part: content, first: 0, last: 19 }, // suffix longer than the file
    { range: "bytes=7-7", part: "7", first: 7, last: 7 },
  ];
  for (const { range, part, first, last } of served) {
    test(`${range} → 206 bytes ${first}-${last}/20`, async () => {
      const res = await files("/ranges/twenty", { headers: { range } });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get("content-range"), `bytes ${first}-${last}/20`);
      assert.equal(res.headers.get("content-length"), String(part.length));
      assert.equal(res.headers.get("etag"), etag);
      assert.equal(await res.text(), part);
    });
  }

  for (const range of ["bytes=20-", "bytes=25-30", "bytes=-0"]) {
    test(`${range} → 416 with Content-Range bytes */20`, async () => {
      const res = await files("/ranges/twenty", { headers: { range } });
      assert.equal(res.headers.get("content-range"), "bytes */20");
      await assertError(res, 416, "bad_request", /20 bytes/);
    });
  }

  // RFC 9110: a Range header that does not parse (or asks for several ranges, which this server
  // does not serve as multipart) is ignored and the whole file is sent.
  for (const range of ["bytes=x-y", "items=0-1", "bytes=5-2", "bytes=0-1,4-5", "bytes=", "garbage"]) {
    test(`${JSON.stringify(range)} is ignored → 200 with the whole file`, async () => {
      const res = await files("/ranges/twenty", { headers: { range } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-range"), null);
      assert.equal(res.headers.get("content-length"), "20");
      assert.equal(await res.text(), content);
    });
  }

  test("If-Range with the current ETag honours the range; another ETag gets the whole file", async () => {
    const honoured = await files("/ranges/twenty", { headers: { range: "bytes=0-1", "if-range": etag } });
    assert.equal(honoured.status, 206);
    assert.equal(await honoured.text(), "01");
    const stale = await files("/ranges/twenty", { headers: { range: "bytes=0-1", "if-range": '"0000"' } });
    assert.equal(stale.status, 200);
    assert.equal(await stale.text(), content);
  });

  test("HEAD with a range answers the 206 headers without a body", async () => {
    const res = await files("/ranges/twenty", { method: "HEAD", headers: { range: "bytes=2-6" } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get("content-range"), "bytes 2-6/20");
    assert.equal(res.headers.get("content-length"), "5");
    assert.equal(await res.text(), "");
  });

  test("HEAD with an unsatisfiable range answers 416", async () => {
    const res = await files("/ranges/twenty", { method: "HEAD", headers: { range: "bytes=30-" } });
    assert.equal(res.status, 416);
    assert.equal(res.headers.get("content-range"), "bytes */20");
  });
});

describe("conditional requests", () => {
  let etag;

  before(async () => {
    etag = (await put("cond/file", "conditional body", { "cache-control": "max-age=5" })).res.headers.get("etag");
  });

  for (const [name, ifNoneMatch] of [
    ["the exact ETag", () => etag],
    ["*", () => "*"],
    ["the weak form W/", () => `W/${etag}`],
    ["a list containing it", () => `"other", ${etag}`],
  ]) {
    test(`If-None-Match with ${name} → 304 without a body`, async () => {
      const res = await files("/cond/file", { headers: { "if-none-match": ifNoneMatch() } });
      assert.equal(res.status, 304);
      assert.equal(res.headers.get("etag"), etag);
      assert.equal(res.headers.get("cache-control"), "max-age=5");
      assert.ok(res.headers.get("last-modified"));
      assert.equal(await res.text(), "");
    });
  }

  test("If-None-Match with other ETags → 200 with the body", async () => {
    const res = await files("/cond/file", { headers: { "if-none-match": '"a", W/"b"' } });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "conditional body");
  });

  test("HEAD with a matching If-None-Match → 304", async () => {
    const res = await files("/cond/file", { method: "HEAD", headers: { "if-none-match": etag } });
    assert.equal(res.status, 304);
    assert.equal(res.headers.get("etag"), etag);
  });

  for (const [name, ifMatch] of [
    ["a different ETag", () => '"0123"'],
    ["the weak form (If-Match compares strongly)", () => `W/${etag}`],
  ]) {
    test(`If-Match with ${name} → 412`, async () => {
      const res = await files("/cond/file", { headers: { "if-match": ifMatch() } });
      await assertError(res, 412, "conflict", /If-Match/);
    });
  }

  for (const [name, ifMatch] of [
    ["the current ETag", () => etag],
    ["*", () => "*"],
    ["a list containing it", () => `"other", ${etag}`],
  ]) {
    test(`If-Match with ${name} → 200`, async () => {
      const res = await files("/cond/file", { headers: { "if-match": ifMatch() } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("etag"), etag);
      assert.equal(await res.text(), "conditional body");
    });
  }

  test("If-Match is evaluated before If-None-Match", async () => {
    const res = await files("/cond/file", { headers: { "if-match": '"0123"', "if-none-match": etag } });
    await assertError(res, 412, "conflict");
  });
});

describe("HEAD, DELETE and missing files", () => {
  test("HEAD answers the GET headers without a body", async () => {
    const { res: stored } = await put("head/file.json", '{"a":1}', { "content-type": "application/json" });
    const res = await files("/head/file.json", { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("etag"), stored.headers.get("etag"));
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(res.headers.get("content-length"), "7");
    assert.equal(res.headers.get("accept-ranges"), "bytes");
    assert.equal(await res.text(), "");
  });

  test("GET and HEAD of a missing file → 404 not_found", async () => {
    await assertError(await files("/missing/file"), 404, "not_found", /missing\/file/);
    const head = await files("/missing/file", { method: "HEAD" });
    assert.equal(head.status, 404);
    assert.match(head.headers.get("content-type"), /^application\/json/);
  });

  test("DELETE answers 204, then the file is gone and a second DELETE is 404", async () => {
    await put("delete/me", "bye");
    const deleted = await files("/delete/me", { method: "DELETE" });
    assert.equal(deleted.status, 204);
    assert.equal(await deleted.text(), "");
    await assertError(await files("/delete/me"), 404, "not_found");
    await assertError(await files("/delete/me", { method: "DELETE" }), 404, "not_found");
  });
});

describe("listing", () => {
  const keys = ["list/a.txt", "list/b.txt", "list/dir1/x", "list/dir1/y", "list/dir2/z"];

  before(async () => {
    for (const key of keys) await put(key, `content of ${key}`, { "content-type": "text/plain" });
    await put("listx/outside", "not under list/");
  });

  test("prefix lists every object under it with its metadata", async () => {
    const body = await assertJson(await files("?prefix=list/"), 200);
    assert.deepEqual(body.objects.map((o) => o.key), keys);
    assert.deepEqual(body.prefixes, []);
    assert.equal(body.truncated, false);
    assert.equal(body.cursor, null);
    const first = body.objects[0];
    assert.equal(first.size, "content of list/a.txt".length);
    assert.match(first.etag, /^[0-9a-f]{32}$/);
    assert.equal(first.contentType, "text/plain");
    assert.match(first.uploaded, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.ok(Math.abs(Date.now() - Date.parse(first.uploaded)) < 10 * 60_000);
  });

  test("delimiter groups deeper keys into prefixes", async () => {
    const body = await assertJson(await files("?prefix=list/&delimiter=/"), 200);
    assert.deepEqual(body.objects.map((o) => o.key), ["list/a.txt", "list/b.txt"]);
    assert.deepEqual(body.prefixes, ["list/dir1/", "list/dir2/"]);
    assert.equal(body.truncated, false);
  });

  test("limit and cursor page through every key exactly once", async () => {
    const seen = [];
    let cursor = null;
    let pages = 0;
    do {
      const query = `?prefix=list/&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const body = await assertJson(await files(query), 200);
      assert.ok(body.objects.length <= 2, `page of ${body.objects.length}`);
      seen.push(...body.objects.map((o) => o.key));
      if (body.truncated) assert.equal(typeof body.cursor, "string");
      else assert.equal(body.cursor, null);
      cursor = body.truncated ? body.cursor : null;
      assert.ok(++pages <= keys.length, "pagination does not end");
    } while (cursor);
    assert.deepEqual(seen, keys);
    assert.ok(pages >= 3, `${pages} pages of at most 2 for ${keys.length} keys`);
  });

  test("a prefix that matches nothing lists nothing", async () => {
    const body = await assertJson(await files("?prefix=nothing-here/"), 200);
    assert.deepEqual(body, { objects: [], prefixes: [], truncated: false, cursor: null });
  });

  for (const query of ["limit=abc", "limit=0", "limit=5000", "limit=-1", "limit=+5", "limit=", "limit=1&limit=2"]) {
    test(`?${query} → 400 bad_request`, async () => {
      await assertError(await files(`?${query}`), 400, "bad_request", /limit/);
    });
  }
});

describe("malformed input", () => {
  const badKeys = [
    ["a double slash", "a//b", /empty segment/],
    ["a trailing slash", "a/", /empty segment/],
    ["a '..' segment", "..%2Fx", /'\.' or '\.\.'/],
    ["a '.' segment", "a/.%2Fb", /'\.' or '\.\.'/],
    ["an invalid percent-escape", "%ZZ", /percent-encoding/],
    ["invalid UTF-8", "%FF%FE", /UTF-8/],
    ["a control character", "a%0Ab", /control/],
    ["an empty key", "", /empty/],
    ["a 1025-byte key", "k".repeat(1025), /1025 bytes/],
  ];
  for (const [name, key, message] of badKeys) {
    for (const method of ["GET", "PUT", "DELETE"]) {
      test(`${method} with ${name} → 400 bad_request`, async () => {
        const init = method === "PUT" ? { method, body: "x" } : { method };
        await assertError(await files(`/${key}`, init), 400, "bad_request", message);
      });
    }
  }

  test("a 1024-byte key and percent-encoded characters are accepted", async () => {
    const long = "k".repeat(1024);
    assert.equal((await put(long, "long")).body.key, long);
    const { body } = await put("caf%C3%A9/a%20b+c", "encoded");
    assert.equal(body.key, "café/a b+c");
    const listed = await assertJson(await files(`?prefix=${encodeURIComponent("café/")}`), 200);
    assert.deepEqual(listed.objects.map((o) => o.key), ["café/a b+c"]);
  });

  for (const [method, path, allow] of [
    ["PATCH", "/some/key", "GET, HEAD, PUT, POST, DELETE, OPTIONS"],
    ["PROPFIND", "/some/key", "GET, HEAD, PUT, POST, DELETE, OPTIONS"],
    ["PUT", "", "GET, OPTIONS"],
    ["DELETE", "", "GET, OPTIONS"],
  ]) {
    test(`${method} /v1/files${path} → 405 with Allow: ${allow}`, async () => {
      const res = await files(path, { method, body: method === "PUT" ? "x" : undefined });
      assert.equal(res.headers.get("allow"), allow);
      await assertError(res, 405, "bad_request", /not allowed/);
    });
  }
});

/** Every route, in an order where each one succeeds (PUT creates what DELETE removes). */
function routes(key) {
  return [
    { name: "PUT", path: `/${key}`, method: "PUT", body: "auth", ok: 201 },
    { name: "POST", path: `/${key}`, method: "POST", body: "auth", ok: 201 },
    { name: "GET", path: `/${key}`, method: "GET", ok: 200 },
    { name: "HEAD", path: `/${key}`, method: "HEAD", ok: 200 },
    { name: "list", path: `?prefix=${key}`, method: "GET", ok: 200 },
    { name: "create an upload in parts", path: `/${key}?uploads`, method: "POST", ok: 201 },
    { name: "list uploads", path: `?uploads&prefix=${key}`, method: "GET", ok: 200 },
    { name: "create a link", path: `/${key}?link`, method: "POST", body: '{"ttl":60}', ok: 200 },
    { name: "DELETE", path: `/${key}`, method: "DELETE", ok: 204 },
  ];
}

/** Sends a route request with exactly the given credentials (no default key). */
function sendRoute(base, route, { headers = {}, query = "" } = {}) {
  const sep = route.path.includes("?") ? "&" : "?";
  const url = `${base}/v1/files${route.path}${query ? sep + query : ""}`;
  return fetch(url, { method: route.method, body: route.body, headers: { "accept-encoding": "identity", ...headers } });
}

/** A 401 with the JSON error body (HEAD answers carry no body: status and type only). */
async function assertUnauthorized(res, route, message) {
  if (route.method === "HEAD") {
    assert.equal(res.status, 401);
    assert.match(res.headers.get("content-type"), /^application\/json/);
  } else {
    await assertError(res, 401, "unauthorized", message);
  }
}

const credentialStyles = [
  ["Authorization: Bearer", (key) => ({ headers: { authorization: `Bearer ${key}` } })],
  ["X-API-Key", (key) => ({ headers: { "x-api-key": key } })],
  ["?apiKey=", (key) => ({ query: `apiKey=${encodeURIComponent(key)}` })],
];

describe("authentication", () => {
  for (const [style, credentials] of credentialStyles) {
    test(`every route accepts the key via ${style}`, async () => {
      for (const route of routes(`auth/${style.replace(/\W+/g, "-")}`)) {
        const res = await sendRoute(server.url, route, credentials(TEST_KEY));
        assert.equal(res.status, route.ok, `${route.name}: ${await res.clone().text()}`);
        if (route.name === "list") assert.equal((await res.json()).objects.length, 1);
        else await res.arrayBuffer();
      }
    });
  }

  test("every route without a key → 401", async () => {
    await put("auth/existing", "x");
    for (const route of routes("auth/existing")) {
      await assertUnauthorized(await sendRoute(server.url, route), route, /missing credentials: send the API key/);
    }
    assert.equal((await files("/auth/existing")).status, 200, "nothing was deleted");
  });

  for (const [style, credentials] of credentialStyles) {
    test(`every route with a wrong key via ${style} → 401`, async () => {
      for (const route of routes("auth/existing")) {
        await assertUnauthorized(await sendRoute(server.url, route, credentials("wrong-key")), route, /invalid API key/);
      }
    });
  }
});

describe("a server without an API key", () => {
  let closed;

  before(async () => {
    closed = await startServer({ apiKey: null });
  });

  after(async () => {
    await closed?.stop();
  });

  for (const [style, credentials] of [...credentialStyles, ["no credentials", () => ({})]]) {
    test(`refuses every route (${style}) with 401`, async () => {
      for (const route of routes("closed/file")) {
        const res = await sendRoute(closed.url, route, credentials(TEST_KEY));
        await assertUnauthorized(res, route, /no API key configured/);
      }
    });
  }
});
