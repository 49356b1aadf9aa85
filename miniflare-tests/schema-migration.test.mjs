// Subjects stored before messages had headers keep working: data is written, workerd stopped,
// each subject's SQLite `messages` table put back to the schema of the release before headers
// (no `headers` column, idempotency keys in the `dedup` table rather than in the message rows)
// with the timestamp index later releases kept, and the new build started on that storage. It
// adds what is missing in place and drops the index (starts by time search the sequence now):
// every old message reads back byte for byte without headers, new messages take headers, starts
// by time work, and all of it survives a crash restart.
//
// Run: bash scripts/build-worker.sh && node_modules/.bin/node --test miniflare-tests/schema-migration.test.mjs

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { startServer, tempDir } from "./server.mjs";
import { connect, uniqueSubject } from "./ws-client.mjs";
import { httpCall } from "./http-client.mjs";

const persist = tempDir("migration-");
let server;
const clients = [];
after(async () => {
  for (const c of clients) c.close();
  await server?.stop();
});

async function open(subject, label) {
  const c = await connect(server, subject, { label });
  clients.push(c);
  return c;
}

/** The `messages` table as the release before headers created it, and the timestamp index that
 *  releases until 2026-11-30 kept on it. */
const OLD_MESSAGES = "CREATE TABLE messages (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, data TEXT NOT NULL)";
const OLD_TS_INDEX = "CREATE INDEX messages_by_ts ON messages (ts)";

/** Every Durable Object database under the persistence directory that has a `messages` table. */
function subjectDatabases() {
  const root = join(persist, "v3", "do");
  const files = existsSync(root)
    ? readdirSync(root).flatMap((dir) => readdirSync(join(root, dir)).filter((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite").map((f) => join(root, dir, f)))
    : [];
  return files.filter((file) => withDatabase(file, (db) => db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'messages'").get() !== undefined));
}

function withDatabase(file, use) {
  const db = new DatabaseSync(file);
  try {
    return use(db);
  } finally {
    db.close();
  }
}

const schemaOf = (file) => withDatabase(file, (db) => db.prepare("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'messages' ORDER BY name").all().map((r) => ({ ...r })));

test("a subject stored before headers is migrated in place and keeps every message", { timeout: 180_000 }, async () => {
  const s = uniqueSubject("migrate");
  server = await startServer({ persist });
  let c = await open(s, "before");
  const texts = ['{"a": 1,  "b":[true, null, 2.50]}', '"caf\u00e9 \\u00e9"', "123456789012345678901234567890"];
  for (const [i, text] of texts.entries()) {
    c.send(`{"op":"pub","id":"s${i}","data":${text}}`);
    assert.equal((await c.nextFrame((f) => f.id === `s${i}`, { since: 0 })).op, "ok");
  }
  await c.ok({ op: "pub", batch: Array.from({ length: 20 }, (_, i) => ({ n: i })), msgId: "old-batch" });
  await c.ok({ op: "trim", upto: 1 });
  const before = await c.ok({ op: "info" });
  const oldPage = await httpCall(server, "GET", `/v1/stream/${s}/messages?limit=1000`);
  await server.stop();

  // Back to the old schema, as a deployment of the previous release left it: no headers, no
  // idempotency keys in the message rows (that release kept every key in the `dedup` table).
  const databases = subjectDatabases();
  assert.ok(databases.length >= 1, "the subject's database was found");
  for (const file of databases) {
    withDatabase(file, (db) => {
      db.exec(`BEGIN;
        ALTER TABLE messages RENAME TO messages_new;
        ${OLD_MESSAGES};
        ${OLD_TS_INDEX};
        INSERT INTO messages SELECT seq, ts, data FROM messages_new;
        INSERT OR REPLACE INTO dedup (msg_id, first_seq, last_seq, ts)
          SELECT msg_id, seq, coalesce(msg_last, seq), ts FROM messages_new WHERE msg_id IS NOT NULL;
        DROP TABLE messages_new;
        COMMIT;`);
    });
    assert.deepEqual(schemaOf(file), [{ name: "messages", sql: OLD_MESSAGES }, { name: "messages_by_ts", sql: OLD_TS_INDEX }]);
  }

  // The new build on the old storage.
  server = await startServer({ persist });
  c = await open(s, "after");
  assert.equal(c.hello.last, before.last);
  const info = await c.ok({ op: "info" });
  for (const field of ["first", "last", "count", "bytes", "epoch"]) assert.deepEqual(info[field], before[field], `info.${field}`);
  const page = await httpCall(server, "GET", `/v1/stream/${s}/messages?limit=1000`);
  assert.equal(page.text, oldPage.text, "every old message reads back byte for byte, without headers");
  assert.ok(!page.text.includes('"headers"'));
  assert.deepEqual(await c.request({ op: "pub", id: "d", batch: [0], msgId: "old-batch" }), { op: "ok", id: "d", seq: 4, last: 23, duplicate: true });

  const added = await c.ok({ op: "pub", data: { after: true }, headers: { schema: "new" }, expectLastSeq: before.last });
  assert.equal(added.seq, before.last + 1);
  assert.deepEqual((await c.request({ op: "get", seq: added.seq })).headers, { schema: "new" });
  assert.equal((await c.ok({ op: "info" })).bytes, before.bytes + '{"after":true}'.length + '{"schema":"new"}'.length);
  const oldTs = page.json.messages.at(-1).ts;
  const since = await httpCall(server, "GET", `/v1/stream/${s}/messages?fromTime=${oldTs}`);
  assert.equal(since.json.messages[0].ts, oldTs, "starts by time work on old rows");
  assert.ok(since.json.messages.at(-1).headers);

  // A crash right after: the migration and the new message were committed with the publish.
  await server.stop({ crash: true });
  for (const file of subjectDatabases()) {
    const schema = schemaOf(file);
    assert.ok(schema.some((r) => r.name === "messages" && /headers TEXT/.test(r.sql)), JSON.stringify(schema));
    assert.ok(!schema.some((r) => r.name === "messages_by_ts"), JSON.stringify(schema));
  }
  server = await startServer({ persist });
  c = await open(s, "after-crash");
  const last = await httpCall(server, "GET", `/v1/stream/${s}/messages/last`);
  assert.deepEqual(last.json, { seq: added.seq, ts: last.json.ts, headers: { schema: "new" }, data: { after: true } });
  const sub = await open(s, "replay");
  await sub.ok({ op: "sub", from: "first" });
  await sub.waitForMessages(info.count + 1);
  assert.deepEqual(sub.msgs.map((m) => m.rawHeaders ?? null), [...Array(info.count).fill(null), '{"schema":"new"}']);
  assert.deepEqual(sub.msgs.slice(0, 2).map((m) => m.raw), [texts[1], texts[2]]);
});
