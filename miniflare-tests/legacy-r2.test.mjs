// The original durable-stream client's R2 methods (unmodified client, from the shared legacy
// directory) and the `/r2/` routes it calls, on the built Worker: chunked uploads (B7), ranges
// and preconditions done right (B6), listing, raw keys, and the same files as `/v1/files`.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startServer, tempDir, TEST_KEY } from "./server.mjs";
import { uniqueSubject } from "./ws-client.mjs";
import { AUTH } from "./http-client.mjs";
import { TOKEN_SECRET, claims, hs256 } from "./tokens.mjs";
import { legacyClient, shutdownAll } from "./legacy-client.mjs";

let server;
let client;
before(async () => {
  // The smallest parts, so that the 12 MiB chunked upload below goes to R2 in three.
  server = await startServer({ secrets: { TOKEN_SECRET }, vars: { FILE_PART_BYTES: String(5 * 1024 * 1024) } });
  client = await legacyClient(server, uniqueSubject("legacy-r2"));
});
after(async () => {
  shutdownAll();
  await server?.stop();
});

const files = tempDir("legacy-r2-");
const r2 = (key, query = "") => `${server.url}/r2/${key}?apiKey=${TEST_KEY}${query}`;
const md5 = (bytes) => createHash("md5").update(bytes).digest("hex");
/** Deterministic bytes (not all alike, so a misplaced range shows). */
const bytes = (length) => Buffer.from(Array.from({ length }, (_, i) => (i * 31 + (i >> 8)) & 0xff));

test("putObject (chunked, as the client sends it), getObject, headObject, deleteObject", async () => {
  const content = bytes(12 * 1024 * 1024 + 321);
  const path = join(files, "big.bin");
  writeFileSync(path, content);
  const key = `${uniqueSubject("obj")}/big.bin`;
  const put = await client.putObject(key, path);
  assert.equal(put, `Put ${key} successfully!`);
  const got = await client.getObject(key);
  assert.ok(Buffer.isBuffer(got), String(got));
  assert.equal(got.length, content.length);
  assert.equal(md5(got), md5(content));
  assert.equal(await client.headObject(key), "");
  assert.equal(await client.deleteObject(key), "");
  const missing = await client.getObject(key);
  assert.equal(missing.response?.status, 404, "getObject returns the axios error");
  assert.equal((await client.headObject(key)).response?.status, 404);
  // Deleting a missing key is fine, as in the original.
  assert.equal(await client.deleteObject(key), "");
});

test("POST stores the type and replaces; GET answers the same ETag; HEAD has it too", async () => {
  const key = `${uniqueSubject("meta")}/note.txt`;
  const first = await fetch(r2(key), { method: "POST", body: "first", headers: { "content-type": "text/plain", "cache-control": "max-age=60" } });
  assert.equal(first.status, 200);
  assert.equal(await first.text(), `Put ${key} successfully!`);
  const second = await fetch(r2(key), { method: "POST", body: "second version", headers: { "content-type": "text/markdown" } });
  const etag = second.headers.get("etag");
  assert.match(etag, /^"[0-9a-f]{32}"$/);
  assert.notEqual(etag, first.headers.get("etag"));
  const read = await fetch(r2(key));
  assert.deepEqual([read.status, await read.text(), read.headers.get("content-type"), read.headers.get("etag")], [200, "second version", "text/markdown", etag]);
  const head = await fetch(r2(key), { method: "HEAD" });
  assert.deepEqual([head.status, head.headers.get("etag")], [200, etag]);
  // The client's own upload keeps axios's default type, as the original stored it.
  const path = join(files, "small.txt");
  writeFileSync(path, "from the client");
  await client.putObject(`${key}.client`, path);
  const fromClient = await fetch(r2(`${key}.client`));
  assert.equal(fromClient.headers.get("content-type"), "application/x-www-form-urlencoded");
  assert.equal(await fromClient.text(), "from the client");
});

test("ranges: a-b, suffix, open-ended, clipped; conditionals: 304 and 412 (B6)", async () => {
  const key = `${uniqueSubject("range")}/data.bin`;
  const content = bytes(102400);
  const stored = await fetch(r2(key), { method: "POST", body: content });
  const etag = stored.headers.get("etag");
  const range = async (spec) => {
    const res = await fetch(r2(key), { headers: { range: spec } });
    return { status: res.status, contentRange: res.headers.get("content-range"), body: Buffer.from(await res.arrayBuffer()) };
  };
  const cases = [
    ["bytes=10-19", 10, 20],
    ["bytes=-100", 102300, 102400],
    ["bytes=102000-", 102000, 102400],
    ["bytes=102300-999999", 102300, 102400],
  ];
  for (const [spec, from, to] of cases) {
    const res = await range(spec);
    assert.equal(res.status, 206, spec);
    assert.equal(res.contentRange, `bytes ${from}-${to - 1}/102400`, spec);
    assert.ok(res.body.equals(content.subarray(from, to)), spec);
  }
  assert.equal((await range("bytes=200000-")).status, 416);
  const notModified = await fetch(r2(key), { headers: { "if-none-match": etag } });
  assert.equal(notModified.status, 304);
  const failed = await fetch(r2(key), { headers: { "if-match": '"0000"' } });
  assert.equal(failed.status, 412);
  const matched = await fetch(r2(key), { headers: { "if-match": etag } });
  assert.equal(matched.status, 200);
});

test("keys are the raw path: a leading slash and empty segments; the listing as the original's", async () => {
  const dir = uniqueSubject("list");
  const keys = [`/${dir}/a.txt`, `${dir}//b.txt`, `${dir}/sub/c.txt`, `${dir}/d%20e.txt`];
  for (const key of keys) {
    const res = await fetch(r2(key), { method: "POST", body: key, headers: { "content-type": "text/plain" } });
    assert.equal(res.status, 200, key);
  }
  for (const key of keys) assert.equal(await (await fetch(r2(key))).text(), key, "the same URL names the same object");
  const listed = await (await fetch(`${server.url}/r2/?apiKey=${TEST_KEY}&prefix=${dir}/`)).json();
  assert.deepEqual(listed.objects.map((o) => o.key).sort(), [`${dir}//b.txt`, `${dir}/d%20e.txt`, `${dir}/sub/c.txt`]);
  assert.equal(listed.truncated, false);
  const object = listed.objects.find((o) => o.key === `${dir}/sub/c.txt`);
  assert.equal(object.size, `${dir}/sub/c.txt`.length);
  assert.equal(object.httpEtag, `"${object.etag}"`);
  assert.equal(object.httpMetadata.contentType, "text/plain");
  const delimited = await (await fetch(`${server.url}/r2?apiKey=${TEST_KEY}&prefix=${dir}/&delimiter=/`)).json();
  assert.deepEqual(delimited.objects.map((o) => o.key), [`${dir}/d%20e.txt`]);
  assert.deepEqual(delimited.delimitedPrefixes.sort(), [`${dir}//`, `${dir}/sub/`]);
});

test("the same bucket as /v1/files; tokens and the key as elsewhere; bad requests answered plainly", async () => {
  const key = `${uniqueSubject("shared")}/report.csv`;
  const native = await fetch(`${server.url}/v1/files/${key}`, { method: "PUT", body: "a,b\n", headers: { ...AUTH, "content-type": "text/csv" } });
  assert.equal(native.status, 201);
  assert.equal(await (await fetch(r2(key))).text(), "a,b\n");
  await fetch(r2(`${key}.2`), { method: "POST", body: "legacy" });
  assert.equal(await (await fetch(`${server.url}/v1/files/${key}.2`, { headers: AUTH })).text(), "legacy");

  assert.equal((await fetch(`${server.url}/r2/${key}`)).status, 401);
  assert.equal((await fetch(`${server.url}/r2/${key}?apiKey=wrong`)).status, 401);
  const reader = hs256(claims({ allow: [{ files: key.split("/")[0] + "/", actions: ["files:read"] }] }));
  assert.equal((await fetch(`${server.url}/r2/${key}?apiKey=${reader}`)).status, 200);
  const denied = await fetch(`${server.url}/r2/${key}?apiKey=${reader}`, { method: "POST", body: "x" });
  assert.equal(denied.status, 403);
  assert.equal((await fetch(`${server.url}/r2/elsewhere.txt?apiKey=${reader}`)).status, 403);

  for (const [method, path] of [["PUT", `/r2/${key}`], ["POST", "/r2/"], ["DELETE", "/r2/"], ["HEAD", "/r2/"]]) {
    const res = await fetch(`${server.url}${path}?apiKey=${TEST_KEY}`, { method, body: method === "PUT" || method === "POST" ? "x" : undefined });
    assert.ok([400, 405].includes(res.status), `${method} ${path}: ${res.status}`);
    if (method !== "HEAD") assert.doesNotMatch(await res.text(), /\n\s+at |panicked/);
  }
});
