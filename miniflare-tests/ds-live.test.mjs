// Live reads on the /ds mount hold no more than they need: a bounded number per stream, SSE
// heartbeats, and responses that end when the stream is deleted or after DS_SSE_MAX_MS. Byte
// streams keep the subject's retention limits. And what a protocol append was acknowledged
// with survives a restart of workerd.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, tempDir, TEST_KEY } from "./server.mjs";
import { uniqueSubject, until } from "./ws-client.mjs";

const AUTH = { authorization: `Bearer ${TEST_KEY}` };
const LIVE_VARS = { DS_MAX_LIVE_READERS: "2", DS_SSE_HEARTBEAT_MS: "300", DS_SSE_MAX_MS: "2000", DS_LONG_POLL_MS: "1500", RETENTION_MAX_MESSAGES: "3" };

let server;
before(async () => {
  server = await startServer({ vars: LIVE_VARS });
});
after(async () => {
  await server?.stop();
});

const streamUrl = (base, name) => `${base}/ds/v1/stream/${name}`;

async function create(base, name, contentType = "application/json", headers = {}) {
  const res = await fetch(streamUrl(base, name), { method: "PUT", headers: { ...AUTH, "content-type": contentType, ...headers } });
  assert.equal(res.status, 201);
}

/** An open SSE response, read event by event. */
async function openSse(base, name, offset = "-1") {
  const controller = new AbortController();
  const res = await fetch(`${streamUrl(base, name)}?offset=${offset}&live=sse`, { headers: AUTH, signal: controller.signal });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const events = [];
  let ended = false;
  // Reads in the background until the response ends (or the test aborts it).
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const type = /^event: ?(.*)$/m.exec(block)?.[1];
          const data = [...block.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join("\n");
          events.push({ type, data, at: Date.now() });
        }
      }
    } catch {
      // aborted by the test
    }
    ended = true;
  })();
  return {
    events,
    ended: () => ended,
    close: () => controller.abort(),
  };
}

test("an idle SSE response sends a keep-alive control event every heartbeat", async () => {
  const name = uniqueSubject("ds-heartbeat");
  await create(server.url, name);
  const opened = Date.now();
  const sse = await openSse(server.url, name);
  try {
    // DS_SSE_MAX_MS (2 s) ends the response: four events before that end take a heartbeat well
    // under a second. Arrival gaps would say more but a busy test process can read two at once.
    await until(() => sse.events.length >= 4 || sse.ended(), 30_000, "the first control event and three heartbeats");
    assert.ok(sse.events.length >= 4, `${sse.events.length} events before the response ended`);
    for (const event of sse.events) {
      assert.equal(event.type, "control");
      const control = JSON.parse(event.data);
      assert.equal(control.streamNextOffset, "0000000000000000_0000000000000000");
      assert.equal(control.upToDate, true);
    }
    // Three heartbeats cannot have been sent sooner than three heartbeat periods after the request.
    const fourth = sse.events[3].at - opened;
    assert.ok(fourth >= 3 * 300 - 50, `the third heartbeat came ${fourth} ms after the request`);
  } finally {
    sse.close();
  }
});

test("SSE responses end when the stream is deleted, and after DS_SSE_MAX_MS", async () => {
  const name = uniqueSubject("ds-sse-end");
  await create(server.url, name);
  const deleted = await openSse(server.url, name);
  await until(() => deleted.events.length >= 1, 30_000, "the first control event");
  const removed = await fetch(streamUrl(server.url, name), { method: "DELETE", headers: AUTH });
  assert.equal(removed.status, 204);
  await until(deleted.ended, 30_000, "the SSE response to end after the delete");
  assert.ok(deleted.ended());

  const other = uniqueSubject("ds-sse-max");
  await create(server.url, other);
  const started = Date.now();
  const capped = await openSse(server.url, other);
  await until(capped.ended, 30_000, "the SSE response to end after DS_SSE_MAX_MS");
  const lifetime = Date.now() - started;
  assert.ok(lifetime >= 1_500, `ended after ${lifetime} ms, before DS_SSE_MAX_MS`);
});

test("live readers per stream are bounded: one more answers 429 with Retry-After", async () => {
  const name = uniqueSubject("ds-readers");
  await create(server.url, name);
  const tail = "0000000000000000_0000000000000000";
  const longPoll = () => fetch(`${streamUrl(server.url, name)}?offset=${tail}&live=long-poll`, { headers: AUTH });
  // An SSE response holds its place before its first event: two of them fill DS_MAX_LIVE_READERS=2.
  // They end by themselves after DS_SSE_MAX_MS (2 s); if a slow machine let that happen before the
  // next request arrived, the place is free again and the pair is opened anew.
  let first, second, refused;
  for (let attempt = 1; ; attempt++) {
    first = await openSse(server.url, name);
    second = await openSse(server.url, name);
    await until(() => first.events.length >= 1 && second.events.length >= 1, 30_000, "both SSE readers");
    refused = await longPoll();
    if (refused.status === 429 || attempt === 5 || !(first.ended() || second.ended())) break;
    await refused.body?.cancel();
  }
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("retry-after"), "1");
  assert.equal((await refused.json()).error.code, "rate_limited");
  // Catch-up reads are not live readers and are never refused.
  const catchUp = await fetch(`${streamUrl(server.url, name)}?offset=-1`, { headers: AUTH });
  assert.equal(catchUp.status, 200);
  // A reader that leaves frees its place (once workerd has passed the disconnect on to the object).
  first.close();
  try {
    const admitted = await until(async () => {
      const res = await longPoll();
      return res.status === 429 ? (await res.body?.cancel(), null) : res;
    }, 30_000, "a long-poll admitted after one SSE reader left");
    assert.equal(admitted.status, 204);
  } finally {
    second.close();
  }
});

test("byte and text streams keep the subject's retention limits (RETENTION_MAX_MESSAGES=3)", async () => {
  const name = uniqueSubject("ds-retention");
  await create(server.url, name, "text/plain");
  for (const chunk of ["a", "b", "c", "d", "e"]) {
    const res = await fetch(streamUrl(server.url, name), { method: "POST", headers: { ...AUTH, "content-type": "text/plain" }, body: chunk });
    assert.equal(res.status, 204);
  }
  const read = await fetch(`${streamUrl(server.url, name)}?offset=-1`, { headers: AUTH });
  assert.equal(await read.text(), "cde");
  assert.equal(read.headers.get("stream-next-offset"), "0000000000000005_0000000000000000");
});

test("protocol appends, producer state, closure and lifetimes survive a restart of workerd", { timeout: 120_000 }, async () => {
  const persist = tempDir("ds-restart-");
  let own = await startServer({ persist });
  try {
    const json = uniqueSubject("ds-restart-json");
    const bytes = uniqueSubject("ds-restart-bytes");
    const closed = uniqueSubject("ds-restart-closed");
    await create(own.url, json, "application/json", { "stream-ttl": "3600" });
    await create(own.url, bytes, "application/octet-stream");
    await create(own.url, closed, "text/plain");
    const producer = { "producer-id": "p1", "producer-epoch": "3" };
    for (let seq = 0; seq < 3; seq++) {
      const res = await fetch(streamUrl(own.url, json), {
        method: "POST",
        headers: { ...AUTH, ...producer, "producer-seq": String(seq), "content-type": "application/json" },
        body: JSON.stringify([{ seq }, `m${seq}`]),
      });
      assert.equal(res.status, 200);
    }
    const chunk = new Uint8Array([0, 1, 2, 254, 255]);
    assert.equal((await fetch(streamUrl(own.url, bytes), { method: "POST", headers: { ...AUTH, "content-type": "application/octet-stream" }, body: chunk })).status, 204);
    const close = await fetch(streamUrl(own.url, closed), { method: "POST", headers: { ...AUTH, "content-type": "text/plain", "stream-closed": "true" }, body: "last words" });
    assert.equal(close.status, 204);

    await own.stop();
    own = await startServer({ persist });

    const read = await fetch(`${streamUrl(own.url, json)}?offset=-1`, { headers: AUTH });
    assert.deepEqual(await read.json(), [{ seq: 0 }, "m0", { seq: 1 }, "m1", { seq: 2 }, "m2"]);
    assert.equal(read.headers.get("stream-next-offset"), "0000000000000006_0000000000000000");
    const head = await fetch(streamUrl(own.url, json), { method: "HEAD", headers: AUTH });
    assert.equal(head.headers.get("stream-ttl"), "3600");
    // The producer's position survived: a retry is a duplicate, a gap is refused, the next seq goes in.
    const retry = await fetch(streamUrl(own.url, json), {
      method: "POST",
      headers: { ...AUTH, ...producer, "producer-seq": "2", "content-type": "application/json" },
      body: JSON.stringify([{ seq: 2 }, "m2"]),
    });
    assert.equal(retry.status, 204);
    const gap = await fetch(streamUrl(own.url, json), {
      method: "POST",
      headers: { ...AUTH, ...producer, "producer-seq": "5", "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(gap.status, 409);
    assert.equal(gap.headers.get("producer-expected-seq"), "3");

    const raw = await fetch(`${streamUrl(own.url, bytes)}?offset=-1`, { headers: AUTH });
    assert.deepEqual(new Uint8Array(await raw.arrayBuffer()), chunk);
    const text = await fetch(`${streamUrl(own.url, closed)}?offset=-1`, { headers: AUTH });
    assert.equal(await text.text(), "last words");
    assert.equal(text.headers.get("stream-closed"), "true");
    const refused = await fetch(streamUrl(own.url, closed), { method: "POST", headers: { ...AUTH, "content-type": "text/plain" }, body: "more" });
    assert.equal(refused.status, 409);
  } finally {
    await own.stop();
  }
});
