// Tokens on live connections, on real workerd: in-band refresh (no reconnect, no missed or
// repeated sequence) across hibernation and across a restart of workerd, a socket closed when
// its token expires or is revoked, and publish rate limits (nothing stored beyond them).

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { TEST_KEY } from "./server.mjs";
import { WsClient, rawUpgrade, sleep, uniqueSubject, until } from "./ws-client.mjs";
import { allowSubjects, claims, hs256, startTokenServer } from "./tokens.mjs";

const PER_CONNECTION_RATE = 50;
let server;
let persist;
const start = () => startTokenServer({ persist, vars: { PUB_RATE_PER_CONNECTION: String(PER_CONNECTION_RATE) } });
before(async () => {
  server = await startTokenServer({ vars: { PUB_RATE_PER_CONNECTION: String(PER_CONNECTION_RATE) } });
  persist = server.persist;
});
after(async () => {
  await server?.stop();
});

const master = { authorization: `Bearer ${TEST_KEY}` };
const everything = (subject) => [allowSubjects([subject], ["pub", "sub", "state", "admin"])];

const open = (subject, token, label) => WsClient.connect(`${server.wsUrl}/v1/stream/${subject}?token=${token}`, { label: label ?? subject });
const openWithKey = (subject) => WsClient.connect(`${server.wsUrl}/v1/stream/${subject}?apiKey=${TEST_KEY}`, { label: `${subject} (key)` });
const evict = async (subject) => {
  const res = await fetch(`${server.url}/test/evict/${subject}`);
  assert.equal(res.status, 200, "the test build has /test/evict (DSTREAM_TEST_FEATURES=test-hooks)");
};

/** Publishes `count` messages through a key-authenticated connection; returns their seqs. */
async function publish(publisher, count, tag) {
  const seqs = [];
  for (let i = 0; i < count; i++) seqs.push((await publisher.ok({ op: "pub", data: { tag, i } })).seq);
  return seqs;
}

/** Acks what arrived as it arrives (a subscriber with a window must ack). */
function autoAck(client) {
  client.onFrame = (frame) => {
    if (frame.op === "msg" || frame.op === "msgs") client.send({ op: "ack", seq: client.msgs.at(-1).seq });
  };
}

/** A token's `exp` in ms. */
const expiryOf = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url")).exp * 1000;

/** A key-authenticated publisher, and a reader holding a `ttl`-second token of `sub`, subscribed
 *  as `consumer` and past the first `count` messages. */
async function readerWithShortToken(subject, { sub, ttl, consumer, count }) {
  const publisher = await openWithKey(subject);
  const token = hs256(claims({ sub, ttl, allow: everything(subject) }));
  const reader = await open(subject, token);
  autoAck(reader);
  await reader.ok({ op: "sub", from: "first", consumer });
  await publish(publisher, count, "before");
  await reader.waitForMessages(count);
  return { publisher, reader, token };
}

const assertContiguous = (client, last) => {
  assert.deepEqual(client.msgs.map((m) => m.seq), Array.from({ length: last }, (_, i) => i + 1), "every sequence once, in order");
};

describe("in-band refresh", () => {
  test("a refreshed socket outlives its first token: no reconnect, no gap, no repeat", async () => {
    const subject = uniqueSubject("refresh");
    const { publisher, reader, token: shortLived } = await readerWithShortToken(subject, { sub: "reader", ttl: 4, consumer: "c", count: 5 });
    const longLived = hs256(claims({ sub: "reader", ttl: 3600, allow: everything(subject) }));
    const refreshed = await reader.ok({ op: "auth", token: longLived });
    assert.equal(refreshed.exp * 1000, expiryOf(longLived));
    // Past the first token's expiry (and any alarm set for it).
    await until(() => Date.now() > expiryOf(shortLived) + 1500, 15_000, "the first token's expiry");
    await publish(publisher, 5, "after");
    await reader.waitForMessages(10);
    assert.equal(reader.closed, null);
    assertContiguous(reader, 10);
    assert.equal((await reader.request({ op: "info" })).op, "ok");
    reader.close();
    publisher.close();
  });

  test("refresh works across hibernation, and the refreshed expiry is what the woken object enforces", async () => {
    const subject = uniqueSubject("hibernate");
    const publisher = await openWithKey(subject);
    const first = hs256(claims({ sub: "sleeper", ttl: 5, allow: everything(subject) }));
    const refreshedReader = await open(subject, first, "refreshed");
    autoAck(refreshedReader);
    await refreshedReader.ok({ op: "sub", from: "first" });
    const unrefreshed = await open(subject, hs256(claims({ sub: "other", ttl: 5, allow: everything(subject) })), "unrefreshed");
    // (A socket that never sent a frame gets the err frame but, on local workerd, not the close
    // frame that follows it; every real client sends at least its `sub`.)
    await unrefreshed.ok({ op: "info" });
    await publish(publisher, 3, "a");
    await refreshedReader.waitForMessages(3);
    await evict(subject);
    // The first frame after waking up: the refresh, checked against the restored grant.
    await refreshedReader.ok({ op: "auth", token: hs256(claims({ sub: "sleeper", ttl: 3600, allow: everything(subject) })) });
    await evict(subject);
    await publish(publisher, 3, "b");
    // The unrefreshed socket is closed at its expiry by the woken object's alarm.
    const closed = await unrefreshed.waitClosed(30_000);
    assert.equal(closed.code, 4401);
    assert.equal(unrefreshed.framesOf("err").at(-1).code, "token_expired");
    await refreshedReader.waitForMessages(6);
    await sleep(1000);
    assert.equal(refreshedReader.closed, null, "the refreshed socket stays open");
    assertContiguous(refreshedReader, 6);
    refreshedReader.close();
    publisher.close();
  });

  test("refusals keep the old token in force", async () => {
    const subject = uniqueSubject("refusals");
    const token = hs256(claims({ sub: "svc", ttl: 3600, allow: [allowSubjects([subject], ["sub", "pub"])] }));
    const client = await open(subject, token);
    await client.ok({ op: "sub", from: "first" });
    const cases = [
      [hs256(claims({ sub: "someone-else", allow: everything(subject) })), "forbidden", /connect again to change identity/],
      [hs256(claims({ sub: "svc", ttl: -5, allow: everything(subject) })), "token_expired", /expired/],
      [hs256(claims({ sub: "svc", allow: everything(subject) }), "wrong-secret"), "unauthorized", /signature/],
      ["eyJub3Q.a.b", "unauthorized", /malformed/],
      [hs256(claims({ sub: "svc", allow: everything("elsewhere") })), "forbidden", /grants nothing/],
      [hs256(claims({ sub: "svc", allow: [allowSubjects([subject], ["pub"])] })), "forbidden", /does not grant sub and this connection is subscribed/],
    ];
    for (const [next, code, message] of cases) {
      const reply = await client.request({ op: "auth", token: next });
      assert.equal(reply.op, "err", JSON.stringify(reply));
      assert.equal(reply.code, code);
      assert.match(reply.message, message);
    }
    // Still the old rights: pub works, state does not.
    assert.equal((await client.request({ op: "pub", data: 1 })).op, "ok");
    assert.equal((await client.request({ op: "state.get" })).code, "forbidden");
    assert.equal(client.closed, null);
    client.close();
  });
});

describe("expiry and revocation close live sockets", () => {
  test("a token that expires without refresh: err token_expired, then close 4401", async () => {
    const subject = uniqueSubject("expire");
    const client = await open(subject, hs256(claims({ ttl: 3, allow: everything(subject) })));
    await client.ok({ op: "sub", from: "first" });
    const closed = await client.waitClosed(30_000);
    assert.equal(closed.code, 4401);
    const error = client.framesOf("err").at(-1);
    assert.equal(error.code, "token_expired");
    assert.equal(error.id, null);
  });

  test("a revoked token's socket is closed within 10 seconds (close 4403), others stay", async () => {
    const subject = uniqueSubject("revoke");
    const victim = await open(subject, hs256(claims({ sub: "leaked", jti: `leak-${Date.now()}`, allow: everything(subject) })), "victim");
    const jti = JSON.parse(Buffer.from(victim.ws.url.split("token=")[1].split(".")[1], "base64url")).jti;
    const bystander = await open(subject, hs256(claims({ sub: "fine", allow: everything(subject) })), "bystander");
    await victim.ok({ op: "sub", from: "first" });
    const res = await fetch(`${server.url}/v1/tokens/revoke`, { method: "POST", headers: master, body: JSON.stringify({ jti }) });
    assert.equal(res.status, 200, await res.text());
    const revokedAt = Date.now();
    const closed = await victim.waitClosed(10_000);
    const took = Date.now() - revokedAt;
    assert.equal(closed.code, 4403);
    assert.match(victim.framesOf("err").at(-1).message, /revoked/);
    assert.ok(took <= 10_000, `closed ${took} ms after the revocation`);
    assert.equal((await bystander.request({ op: "info" })).op, "ok");
    bystander.close();
  });
});

describe("rate limits", () => {
  test("per token: the limit holds over WebSocket and HTTP, nothing stored beyond it", async () => {
    const subject = uniqueSubject("rate");
    const rate = 5;
    const token = hs256(claims({ sub: "chatty", allow: everything(subject), limits: { pubRate: rate } }));
    const client = await open(subject, token);
    const began = Date.now();
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => client.request({ op: "pub", data: { i } })));
    const elapsed = (Date.now() - began) / 1000;
    const stored = replies.filter((r) => r.op === "ok");
    const limited = replies.filter((r) => r.op === "err");
    assert.ok(limited.length > 0, "some publishes were refused");
    for (const r of limited) {
      assert.equal(r.code, "rate_limited");
      assert.ok(r.retryAfterMs > 0 && r.retryAfterMs <= 1000, JSON.stringify(r));
    }
    assert.ok(stored.length <= rate * (1 + elapsed) + 1, `${stored.length} stored in ${elapsed} s`);
    const info = await client.ok({ op: "info" });
    assert.equal(info.count, stored.length, "exactly the admitted publishes are stored");

    // The same token's `sub` over HTTP shares the bucket: 429 with Retry-After.
    let answer;
    for (let i = 0; i < 20; i++) {
      answer = await fetch(`${server.url}/v1/stream/${subject}`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: "1" });
      if (answer.status === 429) break;
    }
    assert.equal(answer.status, 429);
    assert.ok(Number(answer.headers.get("retry-after")) >= 1);
    const body = await answer.json();
    assert.equal(body.error.code, "rate_limited");
    assert.ok(body.error.retryAfterMs > 0);
    // After waiting as told, a publish goes through.
    await sleep(body.error.retryAfterMs);
    await until(async () => (await client.request({ op: "pub", data: "later" })).op === "ok", 10_000, "a publish after the wait");
    client.close();
  });

  test("per token bytes, per connection, and the connection count of a token", async () => {
    const subject = uniqueSubject("limits");
    const bytesToken = hs256(claims({ sub: "bulky", allow: everything(subject), limits: { pubBytesRate: 1000 } }));
    const bulky = await open(subject, bytesToken);
    const big = "x".repeat(600);
    assert.equal((await bulky.request({ op: "pub", data: big })).op, "ok");
    const second = await bulky.request({ op: "pub", data: big });
    assert.equal(second.code, "rate_limited", "1,200 bytes within a second exceed 1,000 bytes/s");
    bulky.close();

    // PUB_RATE_PER_CONNECTION applies to API-key connections too.
    const keyed = await openWithKey(subject);
    const replies = await Promise.all(Array.from({ length: PER_CONNECTION_RATE * 3 }, (_, i) => keyed.request({ op: "pub", data: i })));
    assert.ok(replies.some((r) => r.code === "rate_limited"), "the per-connection limit refused some");
    keyed.close();

    const twice = hs256(claims({ sub: "two-tabs", allow: everything(subject), limits: { connections: 2 } }));
    const tabs = [await open(subject, twice, "tab 1"), await open(subject, twice, "tab 2")];
    const third = await rawUpgrade(`${server.url}/v1/stream/${subject}?token=${twice}`);
    assert.equal(third.status, 429, third.body);
    assert.match(JSON.parse(third.body).error.message, /may hold 2 connections/);
    tabs[0].close();
    await tabs[0].waitClosed();
    await until(async () => (await rawUpgrade(`${server.url}/v1/stream/${subject}?token=${twice}`)).status === 101, 10_000, "a slot after a tab closed");
    tabs[1].close();
  });
});

describe("across a restart of workerd", () => {
  test("after a refresh and a restart, the client reconnects with the new token and resumes exactly", async () => {
    const subject = uniqueSubject("restart");
    const { publisher, reader, token: first } = await readerWithShortToken(subject, { sub: "durable-reader", ttl: 6, consumer: "resume", count: 4 });
    const second = hs256(claims({ sub: "durable-reader", ttl: 3600, allow: everything(subject) }));
    await reader.ok({ op: "auth", token: second });
    await reader.ok({ op: "ack", seq: 4 });
    publisher.close();

    await server.stop({ crash: true });
    server = await start();
    // The first token has expired by now; the refreshed one is what the client holds.
    await until(() => Date.now() > expiryOf(first), 15_000, "the first token's expiry");
    assert.equal((await rawUpgrade(`${server.url}/v1/stream/${subject}?token=${first}`)).status, 401);
    const again = await open(subject, second, "reconnected");
    autoAck(again);
    const after = await openWithKey(subject);
    await publish(after, 3, "after");
    await again.ok({ op: "sub", consumer: "resume" });
    await again.waitForMessages(3);
    assert.deepEqual(again.msgs.map((m) => m.seq), [5, 6, 7], "resumes after the acknowledged position");
    again.close();
    after.close();
  });
});
