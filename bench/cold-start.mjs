// Cold start of a new subject, ours against the platform floor, in one run:
//
//   node bench/cold-start.mjs --ours <url> [--floor <url>/<variant>] [--api-key K] [--subjects N]
//
// For each of N never-used subjects, taking turns between our Worker and the floor, it opens a
// WebSocket to the subject and publishes one message as soon as the socket is open, then a
// second one. Local workerd never fetches a script over the network, so "cold" here is a new
// Durable Object: the upgrade creates it (instantiation, schema creation, first load), and the
// first publish is its first write. Reported per server, median and p90:
//   - connect → first ack: from opening the socket to the first publish's ack (the whole cold path);
//   - first publish → ack: on the new object, from sending to the ack;
//   - second publish → ack: the same object warm, for comparison.
// It also compiles the Worker's wasm (build/index_bg.wasm) with this Node's V8 (workerd's engine,
// another version) to show what the bundle's size costs when an isolate starts: lazily (V8's
// default: decoding and validation up front, each function compiled on its first call) and
// eagerly (every function, with the baseline compiler). The floor is JavaScript and has no such
// step. Both servers are reached the same way (wrangler's proxy).
import { readFileSync, statSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { gzipSync } from "node:zlib";

const options = { subjects: 40, apiKey: "test-key", wasm: "build/index_bg.wasm", compiles: 10 };
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const value = args[++i];
  switch (args[i - 1]) {
    case "--ours": options.ours = value; break;
    case "--floor": options.floor = value; break;
    case "--api-key": options.apiKey = value; break;
    case "--subjects": options.subjects = Number(value); break;
    case "--wasm": options.wasm = value; break;
    default:
      console.error(`unknown argument ${args[i - 1]}`);
      process.exit(2);
  }
}
if (!options.ours || !(options.subjects > 0)) {
  console.error("usage: node bench/cold-start.mjs --ours <url> [--floor <url>/<variant>] [--api-key K] [--subjects N]");
  process.exit(2);
}

/** Longest wait for one socket or ack: generous, so a loaded machine is slow but never fails. */
const STEP_TIMEOUT_MS = 60_000;
const runId = Date.now().toString(36);

const servers = [
  {
    name: "ours",
    url: (subject) => `${options.ours.replace(/^http/, "ws")}/v1/stream/${subject}?apiKey=${encodeURIComponent(options.apiKey)}`,
    publish: (id) => JSON.stringify({ op: "pub", id, data: { n: id, pad: "x".repeat(100) } }),
    ackOf: (frame) => (frame.op === "ok" ? frame.id : undefined),
  },
  options.floor && {
    name: "floor",
    url: (subject) => `${options.floor.replace(/^http/, "ws")}/${subject}`,
    publish: (id) => JSON.stringify({ id, data: { n: id, pad: "x".repeat(100) } }),
    ackOf: (frame) => (frame.op === "puback" ? frame.id : undefined),
  },
].filter(Boolean);

/** One new subject: [connect → first ack, first publish → ack, second publish → ack] in ms. */
function coldSample(server, subject) {
  return new Promise((resolve, reject) => {
    const times = {};
    const ws = new WebSocket(server.url(subject));
    const timer = setTimeout(() => fail(new Error(`${server.name}: no ack within ${STEP_TIMEOUT_MS} ms on ${subject}`)), STEP_TIMEOUT_MS);
    const fail = (error) => {
      clearTimeout(timer);
      ws.close();
      reject(error);
    };
    const send = (id) => {
      times[`sent${id}`] = performance.now();
      ws.send(server.publish(id));
    };
    times.connect = performance.now();
    ws.onopen = () => send(1);
    ws.onerror = () => fail(new Error(`${server.name}: the WebSocket to ${subject} failed`));
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.op === "err") return fail(new Error(`${server.name}: ${event.data}`));
      const id = server.ackOf(frame);
      if (id === 1) {
        times.ack1 = performance.now();
        send(2);
      } else if (id === 2) {
        clearTimeout(timer);
        ws.close();
        resolve([times.ack1 - times.connect, times.ack1 - times.sent1, performance.now() - times.sent2]);
      }
    };
  });
}

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const ms = (value) => `${value.toFixed(1)} ms`;

const samples = new Map(servers.map((server) => [server.name, []]));
for (let i = 0; i < options.subjects; i++) {
  // Taking turns, so that both see the same load.
  for (const server of i % 2 ? [...servers].reverse() : servers) {
    samples.get(server.name).push(await coldSample(server, `cold-${runId}-${i}`));
  }
}

const bytes = readFileSync(options.wasm);
/** Median time of `new WebAssembly.Module`. Each compile gets different bytes (a custom section
 *  with its own name appended), so that V8's cache of compiled modules never answers. */
function compileMs() {
  const times = [];
  for (let i = 0; i < options.compiles; i++) {
    const name = Buffer.from(`cold-start-${runId}-${times.length}-${Math.random()}`);
    const unique = Buffer.concat([bytes, Buffer.from([0, name.length + 1, name.length]), name]);
    const start = performance.now();
    new WebAssembly.Module(unique);
    times.push(performance.now() - start);
  }
  return quantile(times, 0.5);
}
const lazyCompileMs = compileMs();
setFlagsFromString("--no-wasm-lazy-compilation");
const eagerCompileMs = compileMs();

console.log(`${options.subjects} new subjects per server, taking turns; median / p90:`);
console.log();
const floor = samples.get("floor");
console.log("| new subject | ours | floor | ours ÷ floor (median) |");
console.log("|---|---:|---:|---:|");
["connect → first ack", "first publish → ack", "second publish → ack (warm)"].forEach((label, k) => {
  const ours = samples.get("ours").map((s) => s[k]);
  const theirs = floor?.map((s) => s[k]);
  const cell = (values) => (values ? `${ms(quantile(values, 0.5))} / ${ms(quantile(values, 0.9))}` : "–");
  const ratio = theirs ? (quantile(ours, 0.5) / quantile(theirs, 0.5)).toFixed(2) : "–";
  console.log(`| ${label} | ${cell(ours)} | ${cell(theirs)} | ${ratio} |`);
});
console.log();
console.log(
  `Wasm bundle: ${(statSync(options.wasm).size / 1024).toFixed(0)} KiB, ${(gzipSync(bytes, { level: 9 }).length / 1024).toFixed(0)} KiB gzipped; ` +
    `new WebAssembly.Module (Node ${process.versions.node}, V8 ${process.versions.v8}, median of ${options.compiles}) takes ` +
    `${ms(lazyCompileMs)} lazily (V8's default), ${ms(eagerCompileMs)} compiling every function; the floor has no wasm.`,
);
