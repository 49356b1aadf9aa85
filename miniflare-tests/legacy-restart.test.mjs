// The original client (unmodified) across a workerd restart between publishes, on the same port
// and storage: it reconnects by itself, its subscription resumes after the last acked message,
// and messages, sequences, state and files all survive. And unacked deliveries survive the
// object's eviction: they are redelivered after the ack wait, as legacy frames.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, tempDir, TEST_KEY } from "./server.mjs";
import { uniqueSubject, until } from "./ws-client.mjs";
import { legacyClient, collect, shutdown, shutdownAll } from "./legacy-client.mjs";

const BASE = 100000000000;
const persist = tempDir("legacy-restart-");
const ACK_WAIT_MS = 1500;
const start = (port) => startServer({ persist, port, vars: { ACK_WAIT_MS: String(ACK_WAIT_MS) } });
let server;
after(async () => {
  shutdownAll();
  await server?.stop();
});

test("a workerd crash and restart between publishes: the client reconnects and nothing is lost or repeated", { timeout: 180_000 }, async () => {
  server = await start();
  const port = Number(new URL(server.url).port);
  const subject = uniqueSubject("legacy-restart");
  const publisher = await legacyClient(server, subject);
  const subscriber = await legacyClient(server, subject);
  const sub = collect(subscriber, 0);
  await subscriber.info();
  for (const n of [1, 2]) assert.equal((await publisher.publish({ n })).sequence, BASE + n);
  await publisher.putState({ lock: true, sequence: BASE + 2 });
  const file = await fetch(`${server.url}/r2/${subject}/kept.txt?apiKey=${TEST_KEY}`, { method: "POST", body: "kept" });
  assert.equal(file.status, 200);
  await sub.waitFor(2);
  await until(() => subscriber.lastSequence === BASE + 2, 5_000, "the second ack");

  await server.stop({ crash: true });
  server = await start(port);
  await until(() => publisher.reconnects >= 1 && subscriber.reconnects >= 1, 60_000, "both clients reconnecting");

  assert.equal((await publisher.publish({ n: 3 })).sequence, BASE + 3, "the numbering continues");
  await sub.waitFor(3);
  assert.deepEqual(sub.data(), [{ n: 1 }, { n: 2 }, { n: 3 }], "resumed after the last ack: no repeat, no gap");
  assert.deepEqual((await publisher.getState()).state, { lock: true, sequence: BASE + 2 });
  assert.equal(await (await fetch(`${server.url}/r2/${subject}/kept.txt?apiKey=${TEST_KEY}`)).text(), "kept");
  // A newcomer replays everything from the start.
  const newcomer = await legacyClient(server, subject);
  const all = collect(newcomer, BASE);
  await all.waitFor(3);
  assert.deepEqual(all.got.map((m) => m.sequence), [BASE + 1, BASE + 2, BASE + 3]);
  [publisher, subscriber, newcomer].forEach(shutdown);
});

test("an unacked delivery survives eviction and is redelivered once the ack wait has passed", { timeout: 120_000 }, async () => {
  server ??= await start();
  const subject = uniqueSubject("legacy-redeliver");
  const publisher = await legacyClient(server, subject);
  const subscriber = await legacyClient(server, subject);
  const got = [];
  let acking = false;
  subscriber.subscribe(0, (msg, ack) => {
    got.push(msg.sequence);
    if (acking) ack();
  });
  await subscriber.info();
  await publisher.publish("unacked");
  await until(() => got.length === 1, 10_000, "the first delivery");
  const evicted = await fetch(`${server.url}/test/evict/${subject}`);
  assert.equal(evicted.status, 200, "the test build has /test/evict (DSTREAM_TEST_FEATURES=test-hooks)");
  // Redelivered from the subscription saved on the socket, after the ack wait.
  await until(() => got.length >= 2, 10 * ACK_WAIT_MS + 20_000, "the redelivery");
  assert.deepEqual(got.slice(0, 2), [BASE + 1, BASE + 1]);
  acking = true;
  await publisher.publish("next");
  await until(() => got.includes(BASE + 2), 20_000, "the next message");
  shutdown(publisher);
  shutdown(subscriber);
});
