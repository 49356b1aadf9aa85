// V8's CPU profiler on a `wrangler dev` Worker's isolate, through wrangler's DevTools endpoint
// (its --inspector-port): what bench/isolate-profile.mjs and bench/ds-appends.mjs report as the
// isolate's busy µs per publish or per append. The isolate is where the Worker's JavaScript and
// wasm run, and the runtime calls they make (SQL, socket sends, fetch); workerd's own threads
// are not in it. V8 samples by the wall clock, so a loaded machine inflates every figure.
import { readdirSync, readFileSync } from "node:fs";

const SAMPLING_INTERVAL_US = 100;

/** The --inspector-port of the `wrangler dev` serving `url` (read from its command line). */
export function inspectorPort(url) {
  const port = new URL(url).port;
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    let argv;
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (argv.includes("dev") && argv[argv.indexOf("--port") + 1] === port && argv.includes("--inspector-port")) {
      return argv[argv.indexOf("--inspector-port") + 1];
    }
  }
  throw new Error(`no wrangler dev with --port ${port} and --inspector-port: start it with one`);
}

/** A DevTools session on the isolate behind an inspector port, with the profiler enabled. */
export async function devtools(port) {
  const [target] = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  // wrangler's inspector proxy refuses connections without an Origin.
  const socket = new WebSocket(target.webSocketDebuggerUrl, { headers: { origin: "http://127.0.0.1" } });
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error(`could not open the DevTools session on port ${port}`));
  });
  let lastId = 0;
  const pending = new Map();
  socket.onmessage = (event) => {
    const reply = JSON.parse(event.data);
    pending.get(reply.id)?.(reply);
    pending.delete(reply.id);
  };
  const call = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++lastId;
      pending.set(id, (reply) => (reply.error ? reject(new Error(`${method}: ${reply.error.message}`)) : resolve(reply.result)));
      socket.send(JSON.stringify({ id, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US });
  return { call, close: () => socket.close() };
}

/** What a sample was running (`null`: nothing, the isolate was idle). */
function category({ functionName, url }) {
  if (functionName === "(idle)") return null;
  if (url.startsWith("wasm://")) return "wasm";
  return functionName === "(garbage collector)" ? "GC" : "JavaScript and runtime calls";
}

/** The categories `busyMicros` sums: what is stable from one run to the next (V8 attributes a
 *  runtime call now to the call, now to its JavaScript caller, so the rest stays together). */
export const CATEGORIES = ["wasm", "GC", "JavaScript and runtime calls"];

/** Busy µs of the isolate per unit of work (`units` publishes or appends), in all and by category. */
export function busyMicros(profile, units) {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const micros = Object.fromEntries(["busy", ...CATEGORIES].map((name) => [name, 0]));
  const sample = SAMPLING_INTERVAL_US / units;
  for (const id of profile.samples) {
    const name = category(frames.get(id));
    if (name) {
      micros[name] += sample;
      micros.busy += sample;
    }
  }
  return micros;
}
