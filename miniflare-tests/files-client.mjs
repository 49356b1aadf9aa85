// What the tests of the files API share: requests with the key, error and JSON assertions, and
// reproducible bodies of any size that are generated and hashed as they stream (a large file is
// never held in memory twice).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { TEST_KEY } from "./server.mjs";

/** A request under /v1/files of `server` with the test key. `identity` keeps the dev server
 *  from gzipping responses on the fly (which would drop Content-Length). */
export function filesRequest(server, path, { headers = {}, ...init } = {}) {
  return fetch(`${server.url}/v1/files${path}`, {
    ...init,
    headers: { authorization: `Bearer ${TEST_KEY}`, "accept-encoding": "identity", ...headers },
  });
}

/** Asserts an error answer: the status, a JSON `{"error":{"code","message"}}` body, the code. */
export async function assertError(res, status, code, messagePattern = /./) {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const body = JSON.parse(text);
  assert.equal(body.error.code, code);
  assert.match(body.error.message, messagePattern);
  return body;
}

/** Asserts a JSON answer with `status` and returns its body. */
export async function assertJson(res, status) {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  return JSON.parse(text);
}

export const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** Deterministic pseudo-random bytes (xorshift32) from `seed`, continued across calls through
 *  the returned state, so a failure can be reproduced. */
function xorshift(seed) {
  let x = seed >>> 0 || 1;
  return (bytes) => {
    for (let i = 0; i < bytes.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      bytes[i] = x & 0xff;
    }
    return bytes;
  };
}

export function seededBytes(length, seed) {
  return xorshift(seed)(new Uint8Array(length));
}

/** A body of `length` seeded bytes made chunk by chunk as it is sent, with the SHA-256 of what
 *  was sent in `sent.digest()` once it is done. `onChunk(sentSoFar)` runs after each chunk
 *  (a test can cut the upload there). */
export function seededStream(length, seed, { chunk = 1024 * 1024, onChunk = () => {} } = {}) {
  const fill = xorshift(seed);
  const hash = createHash("sha256");
  let produced = 0;
  const stream = new ReadableStream({
    async pull(controller) {
      if (produced >= length) return controller.close();
      const bytes = fill(new Uint8Array(Math.min(chunk, length - produced)));
      hash.update(bytes);
      produced += bytes.length;
      controller.enqueue(bytes);
      await onChunk(produced);
    },
  });
  let digest;
  return { stream, sent: { digest: () => (digest ??= hash.digest("hex")) } };
}

/** Reads a response body to its end, returning its length and SHA-256. */
export async function hashBody(res) {
  const hash = createHash("sha256");
  let length = 0;
  for await (const part of res.body) {
    hash.update(part);
    length += part.length;
  }
  return { length, digest: hash.digest("hex") };
}
