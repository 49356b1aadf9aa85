// What publishing through the original protocol (`/stream/{subject}`) costs against the native
// WebSocket single publish, on the same server in the same run: the original client
// (unmodified, from the shared legacy directory) publishes N messages with K in flight, then a
// native WebSocket client does the same with `{"op":"pub"}` frames through the same WebSocket
// library, taking turns (the order alternates every round, AB, BA, …). Besides the rate it
// measures workerd's CPU time per publish (user + system, from /proc), which moves much less
// than the rate on a shared machine. The target: legacy ≥ 0.9 × native (median of the rounds'
// ratios).
//
//   node bench/legacy.mjs [--rounds 5] [--messages 2000] [--in-flight 16]

import { createRequire } from "node:module";
import { cpuSeconds, listener, loadAverage } from "./process-cpu.mjs";
import { startServer, TEST_KEY, ROOT } from "../miniflare-tests/server.mjs";
import { legacyClient, shutdownAll } from "../miniflare-tests/legacy-client.mjs";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return Number(at >= 0 ? args[at + 1] : fallback);
};
const rounds = option("--rounds", 5);
const messages = option("--messages", 2000);
const inFlight = option("--in-flight", 16);
const { w3cwebsocket: W3CWebSocket } = createRequire(`${ROOT}/package.json`)("websocket");

const payload = (i) => ({ n: i, note: "a message of about a hundred bytes, as an app would publish it ....." });

/** Runs `publish(i)` for i < messages with `inFlight` at a time. */
async function drive(publish) {
  let next = 0;
  const worker = async () => {
    while (next < messages) await publish(next++);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

/** Connects the original client; returns its publish (connecting is not timed). */
async function legacyPublisher(url, subject) {
  const client = await legacyClient({ url }, subject);
  return async (i) => {
    const reply = await client.publish(payload(i));
    if (typeof reply.sequence !== "number" || reply.error) throw new Error(`legacy publish failed: ${JSON.stringify(reply)}`);
  };
}

/** Connects a native WebSocket client; returns its publish (connecting is not timed). */
async function nativePublisher(url, subject) {
  const ws = new W3CWebSocket(`${url.replace(/^http/, "ws")}/v1/stream/${subject}?apiKey=${TEST_KEY}`);
  opened.push(ws);
  const pending = new Map();
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.op === "hello") return;
    if (frame.op !== "ok") throw new Error(`native publish failed: ${event.data}`);
    pending.get(frame.id)();
    pending.delete(frame.id);
  };
  let id = 0;
  return () => new Promise((resolve) => {
    pending.set(++id, resolve);
    ws.send(JSON.stringify({ op: "pub", id, data: payload(id) }));
  });
}
const opened = [];

// The original client logs every connection and reconnect on the console: the tables go to
// stdout through `print`, and the client's lines nowhere.
const print = console.log.bind(console);
console.log = () => {};

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const server = await startServer();
try {
  const url = await server.directUrl();
  const pid = listener(url);
  const variants = [
    { name: "legacy (original client, /stream)", connect: legacyPublisher, runs: [] },
    { name: "native (WebSocket pub)", connect: nativePublisher, runs: [] },
  ];
  print(`${messages} single publishes a run, ${inFlight} in flight, same server, alternating.`);
  print();
  print("| round | protocol | rate (msg/s) | workerd CPU per publish (µs) | load average |");
  print("|---:|---|---:|---:|---|");
  for (let round = 1; round <= rounds; round++) {
    for (const variant of round % 2 ? variants : [...variants].reverse()) {
      const load = loadAverage();
      const publish = await variant.connect(url, `bench-legacy-${round}-${variant.connect.name}`);
      const before = cpuSeconds(pid);
      const started = performance.now();
      await drive(publish);
      const seconds = (performance.now() - started) / 1000;
      const micros = ((cpuSeconds(pid) - before) / messages) * 1e6;
      const rate = messages / seconds;
      variant.runs.push({ rate, micros });
      print(`| ${round} | ${variant.name} | ${rate.toFixed(0)} | ${micros.toFixed(1)} | ${load} |`);
    }
  }
  const [legacy, native] = variants.map((v) => v.runs);
  const ratios = (key) => legacy.map((run, k) => run[key] / native[k][key]);
  print();
  print("| median | legacy | native | median of the rounds' ratios (legacy ÷ native) |");
  print("|---|---:|---:|---:|");
  for (const [label, key, digits] of [["rate (msg/s)", "rate", 0], ["workerd CPU per publish (µs)", "micros", 1]]) {
    const [a, b] = [legacy, native].map((runs) => median(runs.map((r) => r[key])).toFixed(digits));
    print(`| ${label} | ${a} | ${b} | ${median(ratios(key)).toFixed(3)} |`);
  }
  const rateRatio = median(ratios("rate"));
  print();
  print(`Legacy route: ${(rateRatio * 100).toFixed(1)}% of the native single-publish rate (target ≥ 90%): ${rateRatio >= 0.9 ? "met" : "NOT met"}.`);
} finally {
  shutdownAll();
  opened.forEach((ws) => ws.close());
  await server.stop();
}
