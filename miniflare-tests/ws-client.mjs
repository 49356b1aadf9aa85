// A small WebSocket client for the end-to-end tests: request/reply by id, a collector of every
// frame and delivered message (with each message's data kept as the exact JSON text received),
// and bounded waits that fail with a clear description.

import { request as httpRequest } from "node:http";
import { randomBytes } from "node:crypto";
import { TEST_KEY } from "./server.mjs";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `predicate()` every `interval` ms until it is truthy; fails with `what` after `timeout`. */
export async function until(predicate, timeout = 5_000, what = "condition", interval = 20) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

/** `${wsUrl}/v1/stream/${subject}?apiKey=…` */
export function streamUrl(server, subject, key = TEST_KEY) {
  const query = key == null ? "" : `?apiKey=${encodeURIComponent(key)}`;
  return `${server.wsUrl}/v1/stream/${subject}${query}`;
}

let subjectCounter = 0;
/** A subject name no other test uses. */
export function uniqueSubject(prefix = "t") {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${subjectCounter++}`;
}

/** End index (exclusive) of the JSON value starting at `i` (after whitespace). */
export function scanJsonValue(text, i) {
  while (" \t\r\n".includes(text[i])) i++;
  const c = text[i];
  if (c === '"') {
    for (i++; i < text.length; i++) {
      if (text[i] === "\\") i++;
      else if (text[i] === '"') return i + 1;
    }
    throw new Error("unterminated string");
  }
  if (c === "{" || c === "[") {
    let depth = 0;
    for (; i < text.length; i++) {
      const ch = text[i];
      if (ch === '"') {
        i = scanJsonValue(text, i) - 1;
      } else if (ch === "{" || ch === "[") depth++;
      else if (ch === "}" || ch === "]") {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    throw new Error("unterminated container");
  }
  while (i < text.length && !",}] \t\r\n".includes(text[i])) i++;
  return i;
}

/**
 * The messages of a `msg`/`msgs` frame with each `data` as the exact JSON text the server sent
 * (the server writes `seq`, `ts`, an optional `headers`, `data`, then an optional
 * `redelivered`, in that order).
 */
export function rawMessages(text) {
  const out = [];
  if (text.startsWith('{"op":"msg",')) {
    // Same layout as one element of `msgs` once the op is dropped.
    const one = rawMessages(`{"op":"msgs","messages":[{${text.slice('{"op":"msg",'.length)}]}`);
    if (one.length !== 1) throw new Error("msg frame with more than one message");
    return one;
  }
  const element = /\{"seq":(\d+),"ts":(\d+),/y;
  const parseOne = (at) => {
    element.lastIndex = at;
    const m = element.exec(text);
    if (!m) throw new Error(`unexpected message layout at ${at}: ${text.slice(at, at + 80)}`);
    let start = element.lastIndex;
    let headers = null;
    if (text.startsWith('"headers":', start)) {
      const from = start + '"headers":'.length;
      start = scanJsonValue(text, from);
      headers = text.slice(from, start);
      if (text[start++] !== ",") throw new Error(`unexpected text after headers at ${start - 1}`);
    }
    if (!text.startsWith('"data":', start)) throw new Error(`unexpected message layout at ${start}: ${text.slice(start, start + 80)}`);
    start += '"data":'.length;
    const end = scanJsonValue(text, start);
    let i = end;
    let redelivered = false;
    if (text.startsWith(',"redelivered":true', i)) {
      redelivered = true;
      i += ',"redelivered":true'.length;
    }
    if (text[i] !== "}") throw new Error(`unexpected text after data at ${i}: ${text.slice(i, i + 40)}`);
    out.push({ seq: Number(m[1]), ts: Number(m[2]), raw: text.slice(start, end), headers, redelivered });
    return i + 1;
  };
  const prefix = '{"op":"msgs","messages":[';
  if (!text.startsWith(prefix)) throw new Error(`not a message frame: ${text.slice(0, 60)}`);
  let i = prefix.length;
  for (;;) {
    i = parseOne(i);
    if (text[i] === ",") i++;
    else if (text.startsWith("]}", i) && i + 2 === text.length) break;
    else throw new Error(`unexpected text in msgs at ${i}`);
  }
  return out;
}

export class WsClient {
  constructor(ws, label) {
    this.ws = ws;
    this.label = label;
    /** Every frame received, parsed, in order: { frame, text, at } */
    this.frames = [];
    /** Every delivered message in order: { seq, ts, headers, data, raw, rawHeaders, redelivered }
     *  (`headers` and `rawHeaders`, the exact JSON text, only when the message has headers) */
    this.msgs = [];
    this.hello = null;
    this.closed = null;
    this.nextId = 1;
    this.waiters = new Set();
    ws.addEventListener("message", (event) => this.#onMessage(event));
    ws.addEventListener("close", (event) => {
      this.closed = { code: event.code, reason: event.reason };
      this.#notify();
    });
  }

  /** Opens a connection and waits for its `hello`. */
  static async connect(url, { timeout = 10_000, label = url } = {}) {
    const ws = new WebSocket(url);
    const client = new WsClient(ws, label);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${label}: not open within ${timeout} ms`)), timeout);
      ws.addEventListener("open", () => { clearTimeout(timer); resolve(); }, { once: true });
      ws.addEventListener("error", (e) => { clearTimeout(timer); reject(new Error(`${label}: connect failed: ${e.message ?? e.type}`)); }, { once: true });
    });
    await client.waitFor(() => client.hello, timeout, "hello frame");
    return client;
  }

  #onMessage(event) {
    if (typeof event.data !== "string") {
      this.frames.push({ frame: { op: "<binary>" }, text: null, at: Date.now() });
      this.#notify();
      return;
    }
    const text = event.data;
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (e) {
      frame = { op: "<unparseable>", error: String(e) };
    }
    this.frames.push({ frame, text, at: Date.now() });
    if (frame.op === "hello" && !this.hello) this.hello = frame;
    if (frame.op === "msg" || frame.op === "msgs") {
      const raws = rawMessages(text);
      const parsed = frame.op === "msg" ? [frame] : frame.messages;
      if (raws.length !== parsed.length) throw new Error("raw/parsed message count mismatch");
      parsed.forEach((m, k) => {
        if (raws[k].seq !== m.seq) throw new Error("raw/parsed seq mismatch");
        // Only messages with headers have the keys, so messages without compare as before.
        const headers = "headers" in m ? { headers: m.headers, rawHeaders: raws[k].headers } : {};
        this.msgs.push({ seq: m.seq, ts: m.ts, ...headers, data: m.data, raw: raws[k].raw, redelivered: !!m.redelivered });
      });
    }
    /** Optional hook, called after every text frame is recorded (e.g. to ack as messages arrive). */
    this.onFrame?.(frame, this);
    this.#notify();
  }

  #notify() {
    for (const w of [...this.waiters]) w();
  }

  /** Frames with this op (in order). */
  framesOf(op) {
    return this.frames.filter((f) => f.frame.op === op).map((f) => f.frame);
  }

  /** Sends a frame: an object (JSON-encoded), a string (as is) or binary data. */
  send(frame) {
    this.ws.send(typeof frame === "string" || frame instanceof Uint8Array || frame instanceof ArrayBuffer ? frame : JSON.stringify(frame));
  }

  /**
   * Waits until `predicate()` is truthy (checked now and after every frame); resolves with its
   * value. Fails after `timeout` ms, or when the socket closes first.
   */
  waitFor(predicate, timeout = 5_000, what = "condition") {
    return new Promise((resolve, reject) => {
      const check = () => {
        let value;
        try {
          value = predicate();
        } catch (e) {
          done();
          reject(e);
          return;
        }
        if (value) {
          done();
          resolve(value);
        } else if (this.closed) {
          done();
          reject(new Error(`${this.label}: closed (${this.closed.code} ${this.closed.reason}) while waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.label}: timed out after ${timeout} ms waiting for ${what}; last frames: ${this.frames.slice(-3).map((f) => f.text?.slice(0, 200)).join(" | ")}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Waits for the first frame after index `since` that matches `predicate(frame)`. */
  async nextFrame(predicate, { since = this.frames.length, timeout = 5_000, what = "frame" } = {}) {
    const found = await this.waitFor(() => this.frames.slice(since).find((f) => predicate(f.frame)), timeout, what);
    return found.frame;
  }

  /**
   * Sends a request and resolves with its reply (`ok` or `err` with the same id). Assigns a
   * numeric id unless the frame has one (`id: undefined` keeps it absent is not supported here:
   * use `send` for id-less frames).
   */
  async request(frame, { timeout = 10_000 } = {}) {
    const withId = "id" in frame ? frame : { ...frame, id: this.nextId++ };
    const since = this.frames.length;
    this.send(withId);
    return this.nextFrame(
      (f) => (f.op === "ok" || f.op === "err") && f.id === withId.id,
      { since, timeout, what: `reply to ${JSON.stringify(withId).slice(0, 120)}` },
    );
  }

  /** Like `request`, but throws unless the reply is `ok`. */
  async ok(frame, options) {
    const reply = await this.request(frame, options);
    if (reply.op !== "ok") throw new Error(`${this.label}: ${JSON.stringify(frame).slice(0, 120)} failed: ${JSON.stringify(reply)}`);
    return reply;
  }

  /** Waits until at least `n` messages were delivered. */
  waitForMessages(n, timeout = 10_000) {
    return this.waitFor(() => this.msgs.length >= n, timeout, `${n} messages (have ${this.msgs.length})`);
  }

  /** Waits until the socket is closed (or `timeout`). */
  waitClosed(timeout = 5_000) {
    return this.waitFor(() => this.closed, timeout, "close").catch((e) => {
      if (this.closed) return this.closed;
      throw e;
    });
  }

  close() {
    try {
      this.ws.close();
    } catch {}
  }
}

/** Opens a client on `subject` of `server`. */
export function connect(server, subject, options = {}) {
  return WsClient.connect(streamUrl(server, subject, options.key === undefined ? TEST_KEY : options.key), {
    label: options.label ?? subject,
    ...options,
  });
}

/**
 * Performs a WebSocket upgrade with arbitrary headers (Node's WebSocket cannot set headers).
 * Resolves with { status, headers, body } for an HTTP answer, or with { status: 101, hello }
 * when the upgrade succeeded (the first text frame, decoded; the socket is then closed).
 */
export function rawUpgrade(url, headers = {}, { timeout = 5_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
        ...headers,
      },
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`upgrade of ${url} did not answer within ${timeout} ms`));
    }, timeout);
    req.on("error", (e) => { clearTimeout(timer); reject(e); });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, headers: res.headers, body });
      });
    });
    req.on("upgrade", (res, socket, head) => {
      let buf = head;
      const tryFrame = () => {
        if (buf.length < 2) return false;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return false;
          len = buf.readUInt16BE(2);
          off = 4;
        }
        if (buf.length < off + len) return false;
        clearTimeout(timer);
        const hello = JSON.parse(buf.subarray(off, off + len).toString("utf8"));
        socket.destroy();
        resolve({ status: res.statusCode, headers: res.headers, hello });
        return true;
      };
      if (tryFrame()) return;
      socket.on("data", (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        tryFrame();
      });
    });
    req.end();
  });
}
