// The subject directory on real workerd: subjects appear once they have a message, a connection
// or a consumer, with their numbers as their last report gave them; wipes (native and /ds) and
// /ds deletes remove them; the listing pages by name with an opaque cursor and a prefix, also
// through 1,000 subjects with small pages; an access token lists only what it may `sub`.
// Reports come from each subject's alarm every DIRECTORY_REPORT_MS (here 200 ms): every wait
// below polls the listing until it shows what is expected, within a generous bound.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { TEST_KEY } from "./server.mjs";
import { httpCall } from "./http-client.mjs";
import { connect, uniqueSubject, until } from "./ws-client.mjs";
import { allowSubjects, claims, hs256, startTokenServer } from "./tokens.mjs";

/** Long enough for a loaded machine: reports are due every 200 ms. */
const REPORTED = 20_000;

let server;
const clients = [];
before(async () => {
  server = await startTokenServer({ vars: { DIRECTORY_REPORT_MS: "200" } });
});
after(async () => {
  for (const c of clients) c.close();
  await server?.stop();
});

async function publish(subject, body = '{"n":1}', query = "") {
  const res = await httpCall(server, "POST", `/v1/stream/${subject}${query}`, { body });
  assert.equal(res.status, 201, res.text);
  return res.json;
}

async function list(query = "", auth) {
  const res = await httpCall(server, "GET", `/v1/subjects${query}`, auth ? { auth } : {});
  assert.equal(res.status, 200, res.text);
  return res.json;
}

/** Every subject under `prefix`, paging with `limit`: the entries and the pages they took. */
async function listAll(prefix, limit, auth) {
  const subjects = [];
  let cursor = null;
  let pages = 0;
  do {
    const query = `?prefix=${prefix}&limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const page = await list(query, auth);
    assert.ok(page.subjects.length <= limit, `a page holds at most ${limit}`);
    subjects.push(...page.subjects);
    cursor = page.cursor;
    pages++;
  } while (cursor !== null);
  return { subjects, pages };
}

/** Waits until the listing under `prefix` satisfies `predicate(entries)`; returns the entries. */
function listedUntil(prefix, predicate, what) {
  return until(async () => {
    const { subjects } = await listAll(prefix, 1000);
    return predicate(subjects) && subjects;
  }, REPORTED, what, 100);
}

const entryOf = (subjects, name) => subjects.find((s) => s.subject === name);

describe("subjects appear, change and go", () => {
  const prefix = `${uniqueSubject("dir")}.`;

  test("a published subject is listed with its numbers, its epoch and when it reported", async () => {
    const subject = `${prefix}orders`;
    const before = Date.now();
    await publish(subject, '{"order":1}');
    await publish(subject, '[{"order":2},{"order":3}]', "?batch=1");
    const listed = await listedUntil(prefix, (s) => entryOf(s, subject)?.last === 3, `${subject} listed with last 3`);
    const entry = entryOf(listed, subject);
    const info = (await httpCall(server, "GET", `/v1/stream/${subject}`)).json;
    assert.deepEqual(Object.keys(entry), ["subject", "first", "last", "count", "bytes", "connections", "subscribers", "consumers", "lastPublishTs", "epoch", "asOf"]);
    assert.equal(entry.first, 1);
    assert.equal(entry.count, 3);
    assert.equal(entry.bytes, info.bytes);
    assert.equal(entry.bytes, '{"order":1}{"order":2}{"order":3}'.length);
    assert.equal(entry.epoch, info.epoch);
    assert.equal(entry.consumers, 0);
    assert.ok(entry.lastPublishTs >= before && entry.lastPublishTs <= Date.now(), "lastPublishTs is the last publish's time");
    assert.ok(entry.asOf >= entry.lastPublishTs, "asOf: when the subject reported, after its last publish");
    const page = await list(`?prefix=${prefix}`);
    assert.ok(page.asOf >= entry.asOf, "the page's asOf is when the directory answered");
  });

  test("connections, subscribers and consumers are counted, and a subject with only a connection is listed", async () => {
    const subject = `${prefix}watched`;
    const a = await connect(server, subject, "watcher a");
    const b = await connect(server, subject, "watcher b");
    clients.push(a, b);
    await a.ok({ op: "sub", from: "first", consumer: "audit" });
    let listed = await listedUntil(prefix, (s) => entryOf(s, subject)?.connections === 2, `${subject} with 2 connections`);
    assert.deepEqual(
      (({ last, connections, subscribers, consumers }) => ({ last, connections, subscribers, consumers }))(entryOf(listed, subject)),
      { last: 0, connections: 2, subscribers: 1, consumers: 1 },
    );
    a.close();
    b.close();
    listed = await listedUntil(prefix, (s) => entryOf(s, subject)?.connections === 0, `${subject} with no connection`);
    assert.equal(entryOf(listed, subject).consumers, 1, "still listed: it has a durable consumer");
  });

  test("a subject with nothing in it is listed only while something is connected", async () => {
    const subject = `${prefix}empty`;
    assert.equal((await httpCall(server, "GET", `/v1/stream/${subject}`)).status, 200, "looked at: it exists");
    const socket = await connect(server, subject, "passer-by");
    clients.push(socket);
    await listedUntil(prefix, (s) => entryOf(s, subject)?.connections === 1, `${subject} listed while connected`);
    socket.close();
    await listedUntil(prefix, (s) => !entryOf(s, subject), `${subject} unlisted once nothing is connected`);
  });

  test("a native wipe removes the subject; a publish after it lists it again under the new epoch", async () => {
    const subject = `${prefix}wiped`;
    await publish(subject);
    await publish(subject);
    const first = entryOf(await listedUntil(prefix, (s) => entryOf(s, subject)?.last === 2, `${subject} listed`), subject);
    const wiped = await httpCall(server, "DELETE", `/v1/stream/${subject}`);
    assert.equal(wiped.status, 200, wiped.text);
    await listedUntil(prefix, (s) => !entryOf(s, subject), `${subject} gone after the wipe`);
    await publish(subject, '{"again":true}');
    const again = entryOf(await listedUntil(prefix, (s) => entryOf(s, subject), `${subject} listed again`), subject);
    assert.equal(again.last, 1);
    assert.equal(again.epoch, wiped.json.epoch);
    assert.notEqual(again.epoch, first.epoch);
  });

  test("a Durable Streams create lists the stream once it has data; a /ds delete removes it", async () => {
    const subject = `${prefix}ds-stream`;
    const json = { "content-type": "application/json" };
    assert.equal((await httpCall(server, "PUT", `/ds/v1/stream/${subject}`, { headers: json })).status, 201);
    assert.equal((await httpCall(server, "POST", `/ds/v1/stream/${subject}`, { headers: json, body: "[1,2]" })).status, 204);
    await listedUntil(prefix, (s) => entryOf(s, subject)?.last === 2, `${subject} listed with 2 messages`);
    assert.equal((await httpCall(server, "DELETE", `/ds/v1/stream/${subject}`)).status, 204);
    await listedUntil(prefix, (s) => !entryOf(s, subject), `${subject} gone after the /ds delete`);
  });
});

describe("paging", () => {
  const prefix = `${uniqueSubject("page")}.`;
  const names = ["a", "b", "b.1", "b.2", "c", "c~", "d-x", "d_x"].map((n) => `${prefix}${n}`);

  before(async () => {
    await Promise.all(names.map((name) => publish(name)));
    await listedUntil(prefix, (s) => s.length === names.length, `${names.length} subjects under ${prefix}`);
  });

  test("pages follow each other by name with an opaque cursor, without gaps or repeats", async () => {
    const { subjects, pages } = await listAll(prefix, 3);
    assert.deepEqual(subjects.map((s) => s.subject), [...names].sort(), "every subject once, in byte order");
    assert.equal(pages, 3);
    const first = await list(`?prefix=${prefix}&limit=3`);
    assert.ok(!first.cursor.includes(prefix.slice(0, 4)), "the cursor does not spell the name out");
    const last = await list(`?prefix=${prefix}&limit=8`);
    assert.equal(last.cursor, null, "no cursor once everything was listed");
  });

  test("a prefix selects the subjects that start with it", async () => {
    const { subjects } = await listAll(`${prefix}b`, 100);
    assert.deepEqual(subjects.map((s) => s.subject), [`${prefix}b`, `${prefix}b.1`, `${prefix}b.2`]);
    assert.deepEqual((await list(`?prefix=${prefix}zzz`)).subjects, []);
  });

  test("bad parameters are refused with a message", async () => {
    for (const [query, message] of [
      ["?limit=0", /`limit` must be an integer between 1 and 1000/],
      ["?limit=1001", /between 1 and 1000/],
      ["?limit=x", /between 1 and 1000/],
      ["?prefix=a/b", /`prefix` must be the start of a subject name/],
      ["?cursor=not-ours", /`cursor` is not one this server gave out/],
      ["?sort=name", /unknown query parameter `sort`/],
      ["?limit=1&limit=2", /given more than once/],
    ]) {
      const res = await httpCall(server, "GET", `/v1/subjects${query}`);
      assert.equal(res.status, 400, query);
      assert.equal(res.json.error.code, "bad_request", query);
      assert.match(res.json.error.message, message, query);
    }
    const noKey = await httpCall(server, "GET", "/v1/subjects", { auth: {} });
    assert.equal(noKey.status, 401);
  });
});

describe("an access token lists only the subjects it may sub", () => {
  const prefix = `${uniqueSubject("tok")}.`;
  const visible = ["open.1", "open.2", "open.3"].map((n) => `${prefix}${n}`);
  const hidden = ["open.secret", "closed.1", "closed.2"].map((n) => `${prefix}${n}`);

  before(async () => {
    await Promise.all([...visible, ...hidden].map((name) => publish(name)));
    await listedUntil(prefix, (s) => s.length === 6, "6 subjects listed");
  });

  const bearer = (token) => ({ authorization: `Bearer ${token}` });

  test("allow and deny rules filter the listing; pages may be short but the cursor goes on", async () => {
    const token = hs256(claims({
      allow: [allowSubjects([`${prefix}open.*`], ["sub"])],
      deny: [{ subjects: [`${prefix}open.secret`], actions: ["sub"] }],
    }));
    const all = await listAll(prefix, 1, bearer(token));
    assert.deepEqual(all.subjects.map((s) => s.subject), visible);
    const page = await list(`?prefix=${prefix}&limit=2`, bearer(token));
    assert.deepEqual(page.subjects.map((s) => s.subject), visible.slice(0, 2));
    const rest = await list(`?prefix=${prefix}&limit=2&cursor=${encodeURIComponent(page.cursor)}`, bearer(token));
    assert.deepEqual(rest.subjects.map((s) => s.subject), visible.slice(2));
  });

  test("a token without sub anywhere lists nothing; the API key lists everything", async () => {
    const publisher = hs256(claims({ allow: [allowSubjects([">"], ["pub"])] }));
    assert.deepEqual((await listAll(prefix, 10, bearer(publisher))).subjects, []);
    const everything = await listAll(prefix, 10, { authorization: `Bearer ${TEST_KEY}` });
    assert.equal(everything.subjects.length, 6);
  });
});

describe("1,000 subjects", () => {
  const prefix = `${uniqueSubject("many")}.`;
  const count = 1000;
  const name = (i) => `${prefix}${String(i).padStart(4, "0")}`;

  test("are all listed, each once and in order, through pages of 37", { timeout: 300_000 }, async () => {
    // Each subject is its own Durable Object: one HTTP publish (a batch of two) per subject, 25 at a time.
    let next = 0;
    await Promise.all(Array.from({ length: 25 }, async () => {
      while (next < count) {
        const i = next++;
        await publish(name(i), `[{"i":${i}},{"i":${i},"second":true}]`, "?batch=1");
      }
    }));
    const listed = await until(async () => {
      const { subjects } = await listAll(prefix, 1000);
      return subjects.length === count && subjects.every((s) => s.last === 2) && subjects;
    }, 120_000, `${count} subjects reported`, 500);
    assert.equal(listed.length, count);
    const { subjects, pages } = await listAll(prefix, 37);
    assert.equal(pages, Math.ceil(count / 37));
    assert.deepEqual(subjects.map((s) => s.subject), Array.from({ length: count }, (_, i) => name(i)));
    assert.ok(subjects.every((s) => s.count === 2 && s.first === 1 && s.last === 2));
  });
});
