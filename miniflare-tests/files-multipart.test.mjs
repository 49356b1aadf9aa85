// Uploads through R2 multipart on real workerd: bodies without Content-Length (and above the
// single-put limit) that the Worker cuts into parts, and uploads in parts on the S3 model
// (create, parts, list, complete, abort, listing by prefix), with what happens when a client
// goes away, a limit is passed or workerd restarts between parts.
//
// Run: bash scripts/build-worker.sh && node_modules/.bin/node --test miniflare-tests/files-multipart.test.mjs

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { assertError, assertJson, filesRequest, hashBody, seededBytes, seededStream, sha256 } from "./files-client.mjs";
import { startServer, tempDir } from "./server.mjs";

const MiB = 1024 * 1024;
const PART = 5 * MiB; // R2's smallest part
const SINGLE_PUT_MAX = 1 * MiB;
const MULTIPART_ETAG = /^"[0-9a-f]{32}-(\d+)"$/;
const SINGLE_PUT_ETAG = /^"[0-9a-f]{32}"$/;

// The single-put limit lowered to 1 MiB: anything larger takes the path of a 5 GiB+ file.
let server;

before(async () => {
  server = await startServer({
    vars: { FILE_SINGLE_PUT_MAX_BYTES: String(SINGLE_PUT_MAX), FILE_PART_BYTES: String(PART), MAX_FILE_BYTES: String(80 * MiB) },
  });
});

after(async () => {
  await server?.stop();
  // The bucket holds a few hundred MiB by now.
  rmSync(server.persist, { recursive: true, force: true });
});

const files = (path, init) => filesRequest(server, path, init);

/** Waits until `condition()` holds, checking every 200 ms for at most `seconds`. */
async function eventually(condition, what, seconds = 60) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) assert.fail(`${what} within ${seconds} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function unfinished(target, prefix) {
  return (await assertJson(await filesRequest(target, `?uploads&prefix=${encodeURIComponent(prefix)}`), 200)).uploads;
}

/** A chunked PUT (no Content-Length) of `length` seeded bytes. */
function putStreamed(key, length, seed, { headers = {}, signal, onChunk } = {}) {
  const { stream, sent } = seededStream(length, seed, { onChunk });
  const res = files(`/${key}`, { method: "PUT", body: stream, duplex: "half", headers, signal });
  return { res, sent };
}

describe("uploads without Content-Length", () => {
  const size = 64 * MiB;
  let sent;
  let stored;

  test("a 64 MiB upload streams into parts and is byte-exact on download", async () => {
    const upload = putStreamed("streamed/64mib.bin", size, 64, { headers: { "content-type": "application/x-dump" } });
    sent = upload.sent;
    const res = await upload.res;
    stored = await assertJson(res, 201);
    assert.equal(stored.size, size);
    const etag = res.headers.get("etag");
    assert.match(etag, MULTIPART_ETAG);
    assert.equal(Number(etag.match(MULTIPART_ETAG)[1]), Math.ceil(size / PART), "13 parts of 5 MiB (the last one short)");
    assert.equal(etag, `"${stored.etag}"`);

    const head = await files("/streamed/64mib.bin", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(size));
    assert.equal(head.headers.get("content-type"), "application/x-dump");
    assert.equal(head.headers.get("etag"), etag);

    const got = await files("/streamed/64mib.bin");
    assert.equal(got.headers.get("content-length"), String(size));
    assert.deepEqual(await hashBody(got), { length: size, digest: sent.digest() });
    assert.deepEqual(await unfinished(server, "streamed/"), [], "the upload was completed, not left open");
  });

  test("a range across a part boundary is exact", async () => {
    const start = PART - 10;
    const res = await files("/streamed/64mib.bin", { headers: { range: `bytes=${start}-${start + 19}` } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get("content-range"), `bytes ${start}-${start + 19}/${size}`);
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), seededBytes(start + 20, 64).subarray(start));
  });

  test("a download the client broke off resumes with Range and If-Range", async () => {
    const hash = createHash("sha256");
    let received = 0;
    const reading = new AbortController();
    const first = await files("/streamed/64mib.bin", { signal: reading.signal });
    const etag = first.headers.get("etag");
    try {
      for await (const part of first.body) {
        hash.update(part);
        received += part.length;
        if (received >= 20 * MiB) break;
      }
    } finally {
      reading.abort();
    }
    assert.ok(received >= 20 * MiB && received < size, `${received} bytes before the break`);
    const rest = await files("/streamed/64mib.bin", { headers: { range: `bytes=${received}-`, "if-range": etag } });
    assert.equal(rest.status, 206);
    assert.equal(rest.headers.get("content-range"), `bytes ${received}-${size - 1}/${size}`);
    for await (const part of rest.body) hash.update(part);
    assert.equal(hash.digest("hex"), sent.digest());
  });

  test("a body that ends within the first part is stored with one put", async () => {
    const { res } = putStreamed("streamed/small.bin", 3 * MiB, 3);
    const response = await res;
    assert.equal((await assertJson(response, 201)).size, 3 * MiB);
    assert.match(response.headers.get("etag"), SINGLE_PUT_ETAG);
  });

  test("a body of exactly one part is one part", async () => {
    const { res, sent: exact } = putStreamed("streamed/one-part.bin", PART, 5);
    const response = await res;
    assert.equal((await assertJson(response, 201)).size, PART);
    assert.match(response.headers.get("etag"), SINGLE_PUT_ETAG, "it ended before a second part began");
    assert.deepEqual(await hashBody(await files("/streamed/one-part.bin")), { length: PART, digest: exact.digest() });
  });

  test("a client that goes away mid-upload leaves no unfinished upload and no file", async () => {
    const cut = new AbortController();
    let cutAt = 0;
    const { res } = putStreamed("cut/away.bin", 40 * MiB, 7, {
      signal: cut.signal,
      onChunk: async (sentSoFar) => {
        // Once parts are under way (the upload is listed), the client disappears.
        if (sentSoFar >= 12 * MiB && !cutAt) {
          await eventually(async () => (await unfinished(server, "cut/")).length === 1, "the upload is listed while it runs");
          cutAt = sentSoFar;
          cut.abort();
        }
      },
    });
    await assert.rejects(res, /abort/i);
    assert.ok(cutAt > PART, `cut after ${cutAt} bytes`);
    await eventually(async () => (await unfinished(server, "cut/")).length === 0, "the cut upload is aborted");
    await assertError(await files("/cut/away.bin"), 404, "not_found");
  });
});

describe("uploads with Content-Length above FILE_SINGLE_PUT_MAX_BYTES", () => {
  test("go to R2 in parts with the right size, type and bytes (the 5 GiB+ path)", async () => {
    const size = 2 * PART + 12_345;
    const data = seededBytes(size, 11);
    const res = await files("/sized/large.bin", { method: "PUT", body: data, headers: { "content-type": "video/mp4" } });
    assert.equal((await assertJson(res, 201)).size, size);
    assert.equal(Number(res.headers.get("etag").match(MULTIPART_ETAG)[1]), 3);
    const got = await files("/sized/large.bin");
    assert.equal(got.headers.get("content-type"), "video/mp4");
    assert.equal(got.headers.get("content-length"), String(size));
    assert.deepEqual(await hashBody(got), { length: size, digest: sha256(data) });
  });

  test("at the limit go in one put", async () => {
    const res = await files("/sized/limit.bin", { method: "PUT", body: seededBytes(SINGLE_PUT_MAX, 12) });
    assert.equal((await assertJson(res, 201)).size, SINGLE_PUT_MAX);
    assert.match(res.headers.get("etag"), SINGLE_PUT_ETAG);
  });
});

/** Creates an upload in parts of `key`; returns `{ key, uploadId, partSize, at(query) }`. */
async function createUpload(target, key, { partSize, headers = {} } = {}) {
  const query = partSize ? `?uploads&partSize=${partSize}` : "?uploads";
  const created = await assertJson(await filesRequest(target, `/${key}${query}`, { method: "POST", headers }), 201);
  assert.equal(created.key, key);
  const at = (more = "") => `/${key}?uploadId=${encodeURIComponent(created.uploadId)}${more}`;
  return { ...created, at };
}

async function putPart(target, upload, partNumber, body) {
  return assertJson(await filesRequest(target, upload.at(`&partNumber=${partNumber}`), { method: "PUT", body }), 200);
}

async function complete(target, upload, parts) {
  const body = JSON.stringify({ parts: parts.map(({ partNumber, etag }) => ({ partNumber, etag })) });
  return filesRequest(target, upload.at(), { method: "POST", body });
}

describe("uploads in parts", () => {
  const size = 2 * PART + 777;
  const data = seededBytes(size, 21);
  const slice = (n) => data.subarray((n - 1) * PART, Math.min(n * PART, size));

  test("parts uploaded out of order, listed, completed: the file is byte-exact", async () => {
    const upload = await createUpload(server, "parts/file.bin", { headers: { "content-type": "application/x-tar" } });
    assert.equal(upload.partSize, PART, "FILE_PART_BYTES is the default part size");
    const third = await putPart(server, upload, 3, slice(3));
    assert.deepEqual({ partNumber: third.partNumber, size: third.size }, { partNumber: 3, size: 777 });
    const first = await putPart(server, upload, 1, slice(1));
    const second = await putPart(server, upload, 2, slice(2));

    const listing = await assertJson(await files(upload.at()), 200);
    assert.equal(listing.uploadId, upload.uploadId);
    assert.equal(listing.partSize, PART);
    assert.deepEqual(listing.parts, [first, second, third]);
    const listed = await unfinished(server, "parts/");
    assert.deepEqual(listed.map((u) => [u.key, u.uploadId, u.partSize]), [["parts/file.bin", upload.uploadId, PART]]);
    assert.ok(Math.abs(Date.parse(listed[0].created) - Date.now()) < 10 * 60_000, listed[0].created);

    const res = await complete(server, upload, [first, second, third]);
    const stored = await assertJson(res, 201);
    assert.equal(stored.size, size);
    assert.match(res.headers.get("etag"), MULTIPART_ETAG);
    const got = await files("/parts/file.bin");
    assert.equal(got.headers.get("content-type"), "application/x-tar");
    assert.deepEqual(await hashBody(got), { length: size, digest: sha256(data) });
    assert.deepEqual(await unfinished(server, "parts/"), []);
    await assertError(await files(upload.at()), 404, "not_found", /completed or aborted/);
  });

  test("a part uploaded again replaces the earlier one", async () => {
    const upload = await createUpload(server, "parts/again.bin");
    await putPart(server, upload, 1, seededBytes(100, 1));
    const again = await putPart(server, upload, 1, seededBytes(50, 2));
    const listing = await assertJson(await files(upload.at()), 200);
    assert.deepEqual(listing.parts, [again]);
    assert.equal((await assertJson(await complete(server, upload, [again]), 201)).size, 50);
  });

  test("abort drops the upload: no longer listed, its parts refused", async () => {
    const upload = await createUpload(server, "parts/aborted.bin");
    await putPart(server, upload, 1, slice(1));
    const res = await files(upload.at(), { method: "DELETE" });
    assert.equal(res.status, 204);
    assert.deepEqual(await unfinished(server, "parts/aborted"), []);
    await assertError(await files(upload.at("&partNumber=2"), { method: "PUT", body: "x" }), 404, "not_found");
    await assertError(await files(upload.at(), { method: "DELETE" }), 404, "not_found");
    await assertError(await files("/parts/aborted.bin"), 404, "not_found");
  });

  test("an upload R2 has forgotten (its 7-day lifecycle rule) is forgotten here too, with what to do next", async () => {
    // The test build's /test/r2-abort aborts in R2 alone, as the bucket's lifecycle rule does.
    const forget = async (upload, key) => {
      const res = await fetch(`${server.url}/test/r2-abort/${upload.uploadId}/${key}`);
      assert.equal(res.status, 204, "the test build has /test/r2-abort (DSTREAM_TEST_FEATURES=test-hooks)");
    };
    const gone = /no longer exists in R2 .*7 days.*start a new upload/;

    const partly = await createUpload(server, "parts/expired.bin");
    await putPart(server, partly, 1, slice(1));
    await forget(partly, "parts/expired.bin");
    await assertError(await files(partly.at("&partNumber=2"), { method: "PUT", body: slice(2) }), 404, "not_found", gone);
    assert.deepEqual(await unfinished(server, "parts/expired"), [], "no longer listed");
    await assertError(await files(partly.at()), 404, "not_found");

    const whole = await createUpload(server, "parts/expired-whole.bin");
    const only = await putPart(server, whole, 1, seededBytes(100, 5));
    await forget(whole, "parts/expired-whole.bin");
    await assertError(await complete(server, whole, [only]), 404, "not_found", gone);
    assert.deepEqual(await unfinished(server, "parts/expired-whole"), []);
    await assertError(await files("/parts/expired-whole.bin"), 404, "not_found");

    // Aborting one R2 dropped already ends it here as well.
    const dropped = await createUpload(server, "parts/expired-abort.bin");
    await putPart(server, dropped, 1, seededBytes(10, 6));
    await forget(dropped, "parts/expired-abort.bin");
    assert.equal((await files(dropped.at(), { method: "DELETE" })).status, 204);
    assert.deepEqual(await unfinished(server, "parts/expired-abort"), []);
  });

  test("wrong part sizes, unknown ids and bad part lists get clear errors", async () => {
    const upload = await createUpload(server, "parts/errors.bin");
    const one = await putPart(server, upload, 1, slice(1));
    const short = await putPart(server, upload, 2, seededBytes(10, 3));
    const three = await putPart(server, upload, 3, seededBytes(10, 4));

    await assertError(await files(upload.at("&partNumber=4"), { method: "PUT", body: new Uint8Array(PART + 1) }), 413, "too_large", /only the last may be smaller/);
    const chunked = new ReadableStream({ start: (c) => (c.enqueue(new Uint8Array(10)), c.close()) });
    await assertError(await files(upload.at("&partNumber=4"), { method: "PUT", body: chunked, duplex: "half" }), 411, "bad_request", /Content-Length required/);
    await assertError(await files(upload.at("&partNumber=0"), { method: "PUT", body: "x" }), 400, "bad_request", /`partNumber` must be an integer between 1 and 10000/);
    await assertError(await files(upload.at("&partNumber=4"), { method: "PUT", body: "" }), 400, "bad_request", /empty/);

    await assertError(await complete(server, upload, [one, short, three]), 400, "bad_request", /part 2 is 10 bytes; every part but the last must be 5242880 bytes/);
    await assertError(await complete(server, upload, [three, one]), 400, "bad_request", /ascending/);
    await assertError(await complete(server, upload, [one, { partNumber: 5, etag: "e" }]), 400, "bad_request", /part 5 was not uploaded/);
    await assertError(await complete(server, upload, [{ ...one, etag: "stale" }]), 400, "bad_request", /take the etags from the part listing/);
    await assertError(await complete(server, upload, []), 400, "bad_request", /`parts` is empty/);
    await assertError(await files(upload.at(), { method: "POST", body: "{" }), 400, "bad_request", /malformed JSON/);
    await assertError(await files(upload.at(), { method: "POST", body: '{"parts":[],"parts":[]}' }), 400, "bad_request", /duplicate key/);

    const unknown = "/parts/errors.bin?uploadId=no-such-upload";
    await assertError(await files(`${unknown}&partNumber=1`, { method: "PUT", body: "x" }), 404, "not_found", /no unfinished upload/);
    await assertError(await files(unknown), 404, "not_found");
    await assertError(await files(unknown, { method: "POST", body: '{"parts":[]}' }), 404, "not_found");
    await assertError(await files(unknown, { method: "DELETE" }), 404, "not_found");
    await assertError(await files(upload.at().replace("errors.bin", "other.bin")), 404, "not_found", /other\.bin/);

    assert.equal((await assertJson(await complete(server, upload, [one, short]), 201)).size, PART + 10, "the upload is still usable");
  });

  test("malformed requests name what is wrong", async () => {
    await assertError(await files("/parts/x.bin?uploads&partSize=1024", { method: "POST" }), 400, "bad_request", /`partSize` must be a byte count between 5242880/);
    await assertError(await files("/parts/x.bin?uploads", { method: "PUT", body: "x" }), 400, "bad_request", /PUT is not an operation on \?uploads; it takes POST/);
    await assertError(await files("/parts/x.bin?uploadId=u&partNumber=1"), 400, "bad_request", /GET is not an operation on \?uploadId=…&partNumber=…/);
    await assertError(await files("/parts/x.bin?uploads&uploadId=u", { method: "POST" }), 400, "bad_request", /at most one of `uploads`, `uploadId` and `link`/);
    await assertError(await files("/parts/x.bin?partNumber=1", { method: "PUT", body: "x" }), 400, "bad_request", /`partNumber` goes with `uploadId`/);
    await assertError(await files("?uploads&delimiter=/"), 400, "bad_request", /`delimiter` does not apply/);
    await assertError(await files("?uploads&cursor=zz"), 400, "bad_request", /`cursor` is not one/);
  });

  test("unfinished uploads are listed by prefix, a page at a time", async () => {
    const created = [];
    for (const key of ["pages/a", "pages/b", "pages/b", "pages/c/d", "pagesX/e"]) created.push(await createUpload(server, key));
    const seen = [];
    let cursor = null;
    do {
      const page = await assertJson(await files(`?uploads&prefix=pages/&limit=2${cursor ? `&cursor=${cursor}` : ""}`), 200);
      assert.ok(page.uploads.length <= 2);
      assert.equal(page.cursor === null, !page.truncated);
      seen.push(...page.uploads.map((u) => u.key));
      cursor = page.cursor;
    } while (cursor);
    assert.deepEqual(seen, ["pages/a", "pages/b", "pages/b", "pages/c/d"]);
    for (const upload of created) assert.equal((await files(upload.at(), { method: "DELETE" })).status, 204);
    assert.deepEqual(await unfinished(server, "pages"), []);
  });
});

describe("on a server that restarts", () => {
  const persist = tempDir("persist-");
  const vars = { FILE_PART_BYTES: String(PART), MAX_FILE_BYTES: String(16 * MiB) };
  let restarting;

  before(async () => {
    restarting = await startServer({ persist, vars });
  });

  after(async () => {
    await restarting?.stop();
    rmSync(persist, { recursive: true, force: true });
  });

  test("an upload in parts survives a killed client and a workerd crash between parts", async () => {
    const size = 2 * PART + 4321;
    const data = seededBytes(size, 31);
    const slice = (n) => data.subarray((n - 1) * PART, Math.min(n * PART, size));
    const upload = await createUpload(restarting, "resume/file.bin", { partSize: PART, headers: { "content-type": "text/csv" } });
    const first = await putPart(restarting, upload, 1, slice(1));

    // The client dies halfway through part 2.
    const killed = new AbortController();
    let sent = 0;
    const half = new ReadableStream({
      async pull(controller) {
        if (sent >= PART / 2) {
          killed.abort();
          return;
        }
        controller.enqueue(slice(2).subarray(sent, sent + MiB));
        sent += MiB;
      },
    });
    const cutPart = filesRequest(restarting, upload.at("&partNumber=2"), {
      method: "PUT",
      body: half,
      duplex: "half",
      headers: { "content-length": String(PART) },
      signal: killed.signal,
    });
    await assert.rejects(cutPart, /abort/i);

    // Then the server crashes, and comes back on the same storage.
    await restarting.stop({ crash: true });
    restarting = await startServer({ persist, vars });

    const listing = await assertJson(await filesRequest(restarting, upload.at()), 200);
    assert.deepEqual(listing.parts, [first], "part 1 is kept; the broken part 2 is not");
    const second = await putPart(restarting, upload, 2, slice(2));
    const third = await putPart(restarting, upload, 3, slice(3));
    assert.equal((await assertJson(await complete(restarting, upload, listing.parts.concat([second, third])), 201)).size, size);
    const got = await filesRequest(restarting, "/resume/file.bin");
    assert.equal(got.headers.get("content-type"), "text/csv");
    assert.deepEqual(await hashBody(got), { length: size, digest: sha256(data) });
  });

  test("a body without Content-Length beyond MAX_FILE_BYTES is refused with 413 and its upload aborted", async () => {
    const { stream } = seededStream(20 * MiB, 41);
    let res;
    try {
      res = await filesRequest(restarting, "/limit/too-big.bin", { method: "PUT", body: stream, duplex: "half" });
    } catch (error) {
      // The server may answer before the client has sent everything and close the connection.
      assert.match(String(error.cause ?? error), /closed|reset|EPIPE|terminated/i);
    }
    if (res) await assertError(res, 413, "too_large", new RegExp(`limit is ${16 * MiB}`));
    await eventually(async () => (await unfinished(restarting, "limit/")).length === 0, "the upload over the limit is aborted");
    await assertError(await filesRequest(restarting, "/limit/too-big.bin"), 404, "not_found");
  });
});
