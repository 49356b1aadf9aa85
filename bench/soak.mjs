// Soak test (not part of CI; run it through scripts/soak.sh, which builds the Worker first).
//
//   node bench/soak.mjs [--minutes 30] [--restart-minutes 5] [--rate 100] [--subjects 1000] [--csv FILE]
//
// Mixed load on --subjects subjects against the Worker on workerd (miniflare-tests/server.mjs):
// WebSocket and HTTP publishers (every message with a msgId, resent after failures, every
// acknowledged sequence recorded), subscribers joining and leaving, durable consumers acking,
// HTTP reads and file uploads, and a crash restart of workerd (SIGKILL, same storage) every
// --restart-minutes. Every 10 s it samples the RSS of the workerd that runs the Worker and the
// error count into a CSV. At the end it reads every subject back over HTTP and checks that each
// acknowledged message is there under its sequence, with no gap and no msgId stored twice.
// Everything talks to 127.0.0.1 only, and every loop stops by itself at the deadline.
// Exits 1 when any integrity check failed.

import { randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ROOT, TEST_KEY, rssKiB, startServer, tempDir, workerdPid as findWorkerdPid } from "../miniflare-tests/server.mjs";

const options = parseOptions(process.argv.slice(2), {
  minutes: 30,
  "restart-minutes": 5,
  rate: 100, // publishes per second, all publishers together
  subjects: 1000,
  csv: join(ROOT, "target", "soak", `soak-${new Date().toISOString().replace(/[:.]/g, "-")}.csv`),
});

// Concurrent loops of each kind: enough to mix every operation without saturating a small machine.
const WS_PUBLISHERS = 4;
const HTTP_PUBLISHERS = 2;
const SUBSCRIBERS = 8;
const CONSUMERS = 4; // each with its own 5 subjects, so consumers never take over each other
const READERS = 2;
const REQUEST_TIMEOUT_MS = 15_000;
const RETRY_GRACE_MS = 60_000; // how long after the deadline a publish is still resent
const SAMPLE_EVERY_MS = 10_000;
// Errors up to this long after a restart count as "during restart": an operation begun while
// workerd was down fails at most a request timeout later.
const RESTART_GRACE_MS = REQUEST_TIMEOUT_MS + 5_000;

const RUN = Date.now().toString(36);
const SUBJECTS = Array.from({ length: options.subjects }, (_, i) => `soak-${RUN}-${i}`);
// The durable consumers' subjects get a fifth of the publishes (a few hot subjects, a long tail).
const HOT_SUBJECTS = SUBJECTS.slice(0, CONSUMERS * 5);
const publishTarget = () => pick(Math.random() < 0.2 ? HOT_SUBJECTS : SUBJECTS);
const startedAt = Date.now();
const deadline = startedAt + options.minutes * 60_000;
const running = () => Date.now() < deadline;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const pick = (list) => list[Math.floor(Math.random() * list.length)];

let server; // replaced by every restart
let restarting = false;
let restarts = 0;

const counts = { ws: 0, http: 0, duplicates: 0, abandoned: 0, delivered: 0, consumerAcks: 0, reads: 0, files: 0 };
/** subject → Map(seq → msgId) of every acknowledged publish */
const acked = new Map();
const publishedSubjects = [];
/** durable consumer subject → last ack the server confirmed */
const consumerAcked = new Map();

// --- errors -----------------------------------------------------------------------------------

const INTEGRITY = new Set(["lost", "mismatch", "gap", "duplicate", "sub-gap", "consumer-skip", "read-gap", "file-mismatch"]);
const errors = new Map();
const firstErrors = new Map(); // kind → the first error's message, for the summary

class SoakError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

function fail(kind, detail) {
  const key = restarting && !INTEGRITY.has(kind) ? `${kind} (during restart)` : kind;
  errors.set(key, (errors.get(key) ?? 0) + 1);
  if (!firstErrors.has(key)) firstErrors.set(key, String(detail).slice(0, 160));
  if (INTEGRITY.has(kind)) console.error(`soak: ${kind}: ${detail}`);
}

function record(error) {
  if (error instanceof SoakError) fail(error.kind, error.message);
  else if (error?.name === "TimeoutError") fail("timeout", error.message);
  else fail("http-transport", error?.cause?.code ?? error?.message);
}

const errorCount = () => [...errors.values()].reduce((a, b) => a + b, 0);

// --- clients ----------------------------------------------------------------------------------

function http(method, path, { body, headers = {} } = {}) {
  return fetch(`${server.url}${path}`, {
    method,
    body,
    headers: { authorization: `Bearer ${TEST_KEY}`, ...headers },
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
}

/** A WebSocket on one subject with pipelined requests (replies matched by id). */
class Socket {
  static open(subject) {
    return new Promise((resolve, reject) => {
      const socket = new Socket(new WebSocket(`${server.wsUrl}/v1/stream/${subject}?apiKey=${TEST_KEY}`));
      const timer = setTimeout(() => {
        socket.close();
        reject(new SoakError("ws-connect", `${subject}: no hello within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      socket.onHello = () => {
        clearTimeout(timer);
        resolve(socket);
      };
      socket.ws.addEventListener("close", () => {
        clearTimeout(timer);
        reject(new SoakError("ws-connect", `${subject}: closed before hello`));
      });
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.pending = new Map();
    this.nextId = 1;
    this.closed = false;
    this.onMessages = () => {};
    ws.addEventListener("message", (event) => this.#receive(JSON.parse(event.data)));
    ws.addEventListener("close", () => {
      this.closed = true;
      for (const { reject, timer } of this.pending.values()) {
        clearTimeout(timer);
        reject(new SoakError("ws-closed", "closed with requests in flight"));
      }
      this.pending.clear();
    });
  }

  #receive(frame) {
    if (frame.op === "hello") this.onHello?.();
    else if (frame.op === "msg") this.onMessages([frame]);
    else if (frame.op === "msgs") this.onMessages(frame.messages);
    else if ((frame.op === "ok" || frame.op === "err") && this.pending.has(frame.id)) {
      const { resolve, reject, timer } = this.pending.get(frame.id);
      clearTimeout(timer);
      this.pending.delete(frame.id);
      if (frame.op === "ok") resolve(frame);
      else reject(new SoakError(`err-${frame.code}`, frame.message));
    }
  }

  request(frame) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new SoakError("ws-closed", "already closed"));
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SoakError("timeout", `no reply to ${frame.op}`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  close() {
    this.ws.close();
  }
}

/** Calls `attempt()` until it returns true, backing off after each failure; false if it gave up. */
async function retry(attempt, until) {
  for (let n = 0; n < 30 && Date.now() < until; n++) {
    if (n) await sleep(Math.min(5_000, 100 * 2 ** n));
    try {
      if (await attempt()) return true;
    } catch (error) {
      record(error);
    }
  }
  return false;
}

// --- load -------------------------------------------------------------------------------------

let tokens = 0;
let refilledAt = Date.now();
/** Paces all publishers together at --rate messages per second. */
async function takeToken() {
  for (;;) {
    const now = Date.now();
    tokens = Math.min(options.rate, tokens + ((now - refilledAt) * options.rate) / 1000);
    refilledAt = now;
    if (tokens >= 1) {
      tokens -= 1;
      return;
    }
    await sleep(Math.ceil(((1 - tokens) * 1000) / options.rate));
  }
}

let messageCounter = 0;
async function newMessage() {
  await takeToken();
  const msgId = `${RUN}-${++messageCounter}`;
  return { msgId, data: { id: msgId, pad: "x".repeat(Math.floor(Math.random() * 200)) } };
}

function recordAck(subject, reply, msgId, via) {
  let bySeq = acked.get(subject);
  if (!bySeq) {
    acked.set(subject, (bySeq = new Map()));
    publishedSubjects.push(subject);
  }
  const previous = bySeq.get(reply.seq);
  if (previous !== undefined && previous !== msgId) fail("mismatch", `${subject}#${reply.seq} acknowledged for ${previous} and ${msgId}`);
  bySeq.set(reply.seq, msgId);
  counts[via]++;
  if (reply.duplicate) counts.duplicates++;
}

async function wsPublisher() {
  while (running()) {
    const subject = publishTarget();
    let pending = [];
    for (let n = 1 + Math.floor(Math.random() * 20); n > 0; n--) pending.push(await newMessage());
    const done = await retry(async () => {
      const socket = await Socket.open(subject);
      try {
        const replies = await Promise.allSettled(pending.map((m) => socket.request({ op: "pub", data: m.data, msgId: m.msgId })));
        replies.forEach((reply, i) => reply.status === "fulfilled" && recordAck(subject, reply.value, pending[i].msgId, "ws"));
        const failure = replies.find((reply) => reply.status === "rejected");
        pending = pending.filter((_, i) => replies[i].status === "rejected");
        if (failure) throw failure.reason;
        return true;
      } finally {
        socket.close();
      }
    }, deadline + RETRY_GRACE_MS);
    if (!done) counts.abandoned += pending.length;
  }
}

async function httpPublisher() {
  while (running()) {
    const subject = publishTarget();
    const message = await newMessage();
    const done = await retry(async () => {
      const res = await http("POST", `/v1/stream/${subject}`, { body: JSON.stringify(message.data), headers: { "idempotency-key": message.msgId } });
      if (res.status !== 201 && res.status !== 200) throw new SoakError(`http-${res.status}`, await res.text());
      recordAck(subject, await res.json(), message.msgId, "http");
      return true;
    }, deadline + RETRY_GRACE_MS);
    if (!done) counts.abandoned++;
  }
}

/**
 * Subscribes for about `ms`, checking that deliveries are contiguous from the resolved start,
 * acking the newest sequence once a second (with an id, so the server confirms it).
 */
async function subscribeFor(subject, sub, ms, { onSubscribed = () => {}, onAcked = () => {} } = {}) {
  const socket = await Socket.open(subject);
  try {
    let first = null;
    let next = null;
    socket.onMessages = (messages) => {
      for (const m of messages) {
        if (next !== null && m.seq < next && m.redelivered) continue; // sent again after an ack wait
        if (next === null) first = m.seq;
        else if (m.seq !== next) fail("sub-gap", `${subject}: #${m.seq} delivered after #${next - 1}`);
        next = m.seq + 1;
        counts.delivered++;
      }
    };
    const ok = await socket.request({ op: "sub", ...sub, window: 500 });
    onSubscribed(ok);
    let ackedSeq = 0;
    const until = Date.now() + ms;
    while (Date.now() < until && running() && !socket.closed) {
      await sleep(1_000);
      if (next !== null && next - 1 > ackedSeq) {
        await socket.request({ op: "ack", seq: next - 1 });
        ackedSeq = next - 1;
        onAcked(ackedSeq);
      }
    }
    if (first !== null && first !== ok.from) fail("sub-gap", `${subject}: first delivery #${first}, subscribed from #${ok.from}`);
  } finally {
    socket.close();
  }
}

async function subscriber() {
  while (running()) {
    try {
      // Mostly subjects with messages, so that joining "first" replays a backlog.
      const subject = publishedSubjects.length && Math.random() < 0.8 ? pick(publishedSubjects) : pick(SUBJECTS);
      await subscribeFor(subject, { from: pick(["first", "last", "new"]) }, 2_000 + Math.random() * 15_000);
    } catch (error) {
      record(error);
      await sleep(1_000);
    }
  }
}

async function durableConsumer(subjects) {
  while (running()) {
    const subject = pick(subjects);
    const confirmed = consumerAcked.get(subject) ?? 0;
    try {
      await subscribeFor(subject, { consumer: "soak" }, 5_000 + Math.random() * 10_000, {
        // Resuming after a confirmed ack may repeat messages (an unconfirmed ack can be lost in a
        // crash) but never skip one.
        onSubscribed: (ok) => ok.from > confirmed + 1 && fail("consumer-skip", `${subject}: resumed at #${ok.from} after a confirmed ack of #${confirmed}`),
        onAcked: (seq) => {
          consumerAcked.set(subject, seq);
          counts.consumerAcks++;
        },
      });
    } catch (error) {
      record(error);
      await sleep(1_000);
    }
  }
}

async function reader() {
  while (running()) {
    await sleep(100);
    if (!publishedSubjects.length) continue;
    const subject = pick(publishedSubjects);
    const from = 1 + Math.floor(Math.random() * Math.max(...acked.get(subject).keys()));
    try {
      const res = await http("GET", `/v1/stream/${subject}/messages?from=${from}&limit=100`);
      if (res.status !== 200) throw new SoakError(`http-${res.status}`, await res.text());
      const page = await res.json();
      page.messages.forEach((m, i) => m.seq !== from + i && fail("read-gap", `${subject}: #${m.seq} at position ${i} of a page from #${from}`));
      counts.reads++;
    } catch (error) {
      record(error);
    }
  }
}

async function uploader() {
  for (let n = 0; running(); n++) {
    await sleep(500);
    const key = `soak-${RUN}/file-${n % 50}`; // a ring of keys bounds the disk used
    const body = randomBytes(1024 + Math.floor(Math.random() * 255 * 1024));
    try {
      const put = await http("PUT", `/v1/files/${key}`, { body, headers: { "content-type": "application/octet-stream" } });
      if (put.status !== 201) throw new SoakError(`http-${put.status}`, await put.text());
      await put.arrayBuffer();
      const got = await http("GET", `/v1/files/${key}`);
      if (got.status !== 200) throw new SoakError(`http-${got.status}`, await got.text());
      const back = Buffer.from(await got.arrayBuffer());
      if (!back.equals(body)) fail("file-mismatch", `${key}: ${back.length} bytes back for ${body.length} stored`);
      counts.files++;
    } catch (error) {
      record(error);
    }
  }
}

async function restarter(persist) {
  for (let next = startedAt + options["restart-minutes"] * 60_000; next < deadline - 30_000; next += options["restart-minutes"] * 60_000) {
    await sleep(next - Date.now());
    restarting = true;
    await server.stop({ crash: true });
    server = await startServer({ persist });
    restarts++;
    await sleep(RESTART_GRACE_MS);
    restarting = false;
  }
}

// --- RSS samples --------------------------------------------------------------------------------

const samples = [];
let sampledServer = null;
let workerdPid = null;

/** RSS (KiB) of the workerd that runs the Worker. */
async function workerdRss() {
  if (sampledServer !== server) {
    workerdPid = await findWorkerdPid(server);
    sampledServer = server;
  }
  return rssKiB(workerdPid);
}

async function sampler() {
  mkdirSync(dirname(options.csv), { recursive: true });
  writeFileSync(options.csv, "seconds,workerd_rss_kib,acknowledged,errors,restarts\n");
  while (running()) {
    const rss = restarting ? null : await workerdRss().catch(() => null);
    const seconds = Math.round((Date.now() - startedAt) / 1000);
    if (rss !== null) samples.push({ seconds, rss });
    appendFileSync(options.csv, `${seconds},${rss ?? ""},${counts.ws + counts.http},${errorCount()},${restarts}\n`);
    await sleep(Math.min(SAMPLE_EVERY_MS, Math.max(0, deadline - Date.now())));
  }
}

// --- verification -----------------------------------------------------------------------------

/** Reads every subject back and checks every acknowledged message. Returns how many were checked. */
async function verify() {
  let checked = 0;
  for (const [subject, bySeq] of acked) {
    const stored = new Map();
    let from = 1;
    let last = 0;
    do {
      let page;
      const read = await retry(async () => {
        const res = await http("GET", `/v1/stream/${subject}/messages?from=${from}&limit=1000`);
        if (res.status !== 200) throw new SoakError(`verify-http-${res.status}`, await res.text());
        page = await res.json();
        return true;
      }, Date.now() + 60_000);
      if (!read) throw new Error(`could not read ${subject} back`);
      for (const m of page.messages) {
        if (m.seq !== from) fail("gap", `${subject}: #${m.seq} follows #${from - 1}`);
        stored.set(m.seq, m.data.id);
        from = m.seq + 1;
      }
      last = page.last;
      if (!page.messages.length) break;
    } while (from <= last);
    for (const [seq, msgId] of bySeq) {
      const found = stored.get(seq);
      if (found === undefined) fail("lost", `${subject}#${seq} (${msgId}) was acknowledged but is not there`);
      else if (found !== msgId) fail("mismatch", `${subject}#${seq} holds ${found}, acknowledged for ${msgId}`);
      checked++;
    }
    const ids = new Set();
    for (const id of stored.values()) {
      if (ids.has(id)) fail("duplicate", `${subject}: ${id} stored twice`);
      ids.add(id);
    }
  }
  return checked;
}

// --- summary ----------------------------------------------------------------------------------

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Least-squares slope, in KiB per minute. */
function slopePerMinute(points) {
  if (points.length < 2) return NaN;
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.seconds, 0) / n;
  const my = points.reduce((a, p) => a + p.rss, 0) / n;
  const sxy = points.reduce((a, p) => a + (p.seconds - mx) * (p.rss - my), 0);
  const sxx = points.reduce((a, p) => a + (p.seconds - mx) ** 2, 0);
  return (sxy / sxx) * 60;
}

function summary(checked) {
  const mib = (kib) => (kib / 1024).toFixed(1);
  const warmup = Math.min(60, options.minutes * 60 * 0.2);
  const settled = samples.filter((s) => s.seconds >= warmup).map((s) => s.rss);
  const secondHalf = samples.filter((s) => s.seconds >= (options.minutes * 60) / 2);
  const integrity = [...INTEGRITY].map((kind) => errors.get(kind) ?? 0).reduce((a, b) => a + b, 0);
  const byKind = [...errors].sort((a, b) => b[1] - a[1]).map(([kind, n]) => `${kind} ${n}`).join(", ") || "none";
  return [
    `- load: ${options.minutes} min on ${options.subjects} subjects at ${options.rate} publishes/s; ${restarts} crash restart(s) of workerd (every ${options["restart-minutes"]} min, same storage)`,
    `- acknowledged publishes: ${counts.ws + counts.http} (${counts.ws} WebSocket, ${counts.http} HTTP; ${counts.duplicates} answered "duplicate" to a resend); ${counts.abandoned} given up unacknowledged`,
    `- verified: ${checked} acknowledged messages read back under their sequences; integrity errors: ${integrity}`,
    `- also: ${counts.delivered} subscriber deliveries, ${counts.consumerAcks} confirmed durable-consumer acks, ${counts.reads} HTTP read pages, ${counts.files} files uploaded and read back`,
    `- errors by kind: ${byKind}`,
    ...[...firstErrors].map(([kind, detail]) => `  - first ${kind}: ${detail}`),
    settled.length
      ? `- workerd RSS after ${warmup} s of warm-up: min ${mib(Math.min(...settled))} MiB, median ${mib(median(settled))} MiB, max ${mib(Math.max(...settled))} MiB; trend over the second half ${(slopePerMinute(secondHalf) / 1024).toFixed(2)} MiB/min (${secondHalf.length} samples; a restart resets it)`
      : "- workerd RSS: no samples",
    `- samples: ${options.csv}`,
  ].join("\n");
}

// --- options ----------------------------------------------------------------------------------

function parseOptions(args, defaults) {
  const parsed = { ...defaults };
  for (let i = 0; i < args.length; i++) {
    const name = args[i].replace(/^--/, "");
    if (!args[i].startsWith("--") || !(name in defaults) || i + 1 >= args.length) {
      console.error(`soak: unknown or incomplete option ${args[i]}; options: ${Object.keys(defaults).map((k) => `--${k}`).join(" ")}`);
      process.exit(2);
    }
    parsed[name] = typeof defaults[name] === "number" ? Number(args[++i]) : args[++i];
  }
  return parsed;
}

// --- main -------------------------------------------------------------------------------------

const persist = tempDir("soak-");
server = await startServer({ persist });
console.error(`soak: ${options.minutes} min against ${server.url}, samples in ${options.csv}`);
const consumerSubjects = (i) => HOT_SUBJECTS.slice(i * 5, i * 5 + 5);
let checked;
try {
  await Promise.all([
    ...Array.from({ length: WS_PUBLISHERS }, wsPublisher),
    ...Array.from({ length: HTTP_PUBLISHERS }, httpPublisher),
    ...Array.from({ length: SUBSCRIBERS }, subscriber),
    ...Array.from({ length: CONSUMERS }, (_, i) => durableConsumer(consumerSubjects(i))),
    ...Array.from({ length: READERS }, reader),
    uploader(),
    restarter(persist),
    sampler(),
  ]);
  console.error("soak: load stopped; reading every subject back");
  checked = await verify();
} finally {
  await server.stop();
  rmSync(persist, { recursive: true, force: true });
}
console.log(summary(checked));
process.exit([...INTEGRITY].some((kind) => errors.has(kind)) ? 1 : 0);
