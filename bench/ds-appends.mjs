// Durable Streams append throughput: HTTP appends per second to ONE stream from 64 concurrent
// connections, measured in one run, with one load generator (wrk), against:
//   - reference: the @durable-streams/server Node reference server (file-backed), in its own process;
//   - ours:      this Worker's /ds mount on local workerd through `wrangler dev`;
//   - floor:     bench/http-floor, a minimal JS Worker + Durable Object doing one SQLite insert
//                per POST, also through `wrangler dev` (what the platform itself costs);
// and ours and the floor once more "direct": at the workerd behind wrangler dev's proxy, a
// dev-only hop (a second workerd process) that production does not have; and ours once more
// without the console's `[assets]`, whose local asset router is in front of every request. For
// ours and the floor it also reports the isolate's busy µs per JSON append (bench/devtools.mjs):
// the Worker's and the Durable Object's own work, without the hops and the platform's share.
//
//   node_modules/.bin/node bench/ds-appends.mjs [--seconds 10] [--connections 64] [--rounds 2]
//
// Needs the built Worker (bash scripts/build-worker.sh) and wrk (apt-get install wrk); prints a
// Markdown table and the raw figures as JSON.

import { execFileSync, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import os from "node:os";
import { launchWrangler, startServer, tempDir, ROOT, TEST_KEY } from "../miniflare-tests/server.mjs";
import { busyMicros, devtools, inspectorPort } from "./devtools.mjs";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const SECONDS = option("seconds", 10);
const CONNECTIONS = option("connections", 64);
const ROUNDS = option("rounds", 2);
const BODIES = {
  "application/json": JSON.stringify({ order: 12345, customer: "c-0001", items: ["a", "b"], note: "x".repeat(40) }),
  "application/octet-stream": "b".repeat(100),
};

/** One wrk run: POSTs of `body` to `url` for SECONDS on CONNECTIONS connections. */
function wrk(url, contentType, headers) {
  const script = join(tempDir("wrk-"), "post.lua");
  const lines = [`wrk.method = "POST"`, `wrk.body = ${JSON.stringify(BODIES[contentType])}`, `wrk.headers["Content-Type"] = "${contentType}"`];
  for (const [name, value] of Object.entries(headers)) lines.push(`wrk.headers["${name}"] = "${value}"`);
  writeFileSync(script, lines.join("\n") + "\n");
  const out = execFileSync("wrk", ["-t1", `-c${CONNECTIONS}`, `-d${SECONDS}s`, "--latency", "-s", script, url]).toString();
  const number = (re) => Number(re.exec(out)?.[1] ?? NaN);
  const ms = (re) => {
    const m = re.exec(out);
    if (!m) return NaN;
    return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]];
  };
  const requests = number(/(\d+) requests in/);
  const failed = number(/Non-2xx or 3xx responses: (\d+)/) || 0;
  const seconds = number(/requests in ([\d.]+)s/);
  return {
    requests,
    perSecond: Math.round((requests - failed) / seconds),
    failed,
    p50ms: ms(/50%\s+([\d.]+)(us|ms|s)/),
    p99ms: ms(/99%\s+([\d.]+)(us|ms|s)/),
  };
}

/** Creates a fresh stream (when the server needs it) and measures appends to it. With a
 *  DevTools session on the server's isolate, JSON appends run once more (not counted in the
 *  rates: the profiler's sampling costs the isolate time) to take the isolate's busy µs per
 *  append, as `isolate`. */
async function measure(label, base, { create, headers = {}, path = (name) => `/v1/stream/${name}`, isolate }) {
  const results = {};
  for (const contentType of Object.keys(BODIES)) {
    const url = `${base}${path(`bench-${contentType.split("/")[1]}-${Date.now()}`)}`;
    if (create) {
      const res = await fetch(url, { method: "PUT", headers: { ...headers, "content-type": contentType } });
      if (res.status !== 201) throw new Error(`${label}: create answered ${res.status}`);
    }
    results[contentType] = wrk(url, contentType, headers);
    console.error(`${label} ${contentType}: ${JSON.stringify(results[contentType])}`);
    if (isolate && contentType === "application/json") {
      await isolate.call("Profiler.start");
      const profiled = wrk(url, contentType, headers);
      const { profile } = await isolate.call("Profiler.stop");
      results[contentType].isolateMicros = Math.round(busyMicros(profile, profiled.requests).busy);
    }
  }
  return results;
}

/** The reference server in a child process (so it has its own event loop, like the others). */
async function startReference() {
  const child = spawn(process.execPath, ["--input-type=module", "-e", `
    import { DurableStreamTestServer } from "@durable-streams/server";
    const server = new DurableStreamTestServer({ port: 0, dataDir: ${JSON.stringify(tempDir("bench-reference-"))}, compression: false });
    console.log("READY " + await server.start());
    process.on("SIGTERM", async () => { await server.stop(); process.exit(0); });
  `], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise((resolve, reject) => {
    child.stdout.on("data", (chunk) => {
      const m = /READY (\S+)/.exec(chunk.toString());
      if (m) resolve(m[1].replace(/\/$/, ""));
    });
    child.on("exit", (code) => reject(new Error(`reference server exited (${code})`)));
  });
  return { url, stop: () => new Promise((done) => { child.once("exit", done); child.kill("SIGTERM"); }) };
}

const auth = { authorization: `Bearer ${TEST_KEY}` };
const rounds = [];
for (let round = 1; round <= ROUNDS; round++) {
  console.error(`== round ${round} of ${ROUNDS}`);
  const figures = {};
  const reference = await startReference();
  try {
    figures.reference = await measure("reference", reference.url, { create: true });
  } finally {
    await reference.stop();
  }
  const ours = await startServer();
  try {
    const isolate = await devtools(inspectorPort(ours.url));
    figures.ours = await measure("ours", `${ours.url}/ds`, { create: true, headers: auth, isolate });
    isolate.close();
    figures.oursDirect = await measure("ours (direct)", `${await ours.directUrl()}/ds`, { create: true, headers: auth });
  } finally {
    await ours.stop();
  }
  // The same Worker without its console's static assets: locally, `[assets]` puts wrangler's
  // asset router (two more Worker invocations) in front of every request, run_worker_first or
  // not; in production that routing is the platform's (bench/RESULTS.md, "The asset router's
  // share"). Shown to size that share, not as the comparison.
  const bare = await startServer({ config: { assets: undefined } });
  try {
    figures.oursNoAssets = await measure("ours without [assets]", `${bare.url}/ds`, { create: true, headers: auth });
  } finally {
    await bare.stop();
  }
  const floor = await launchWrangler(join(ROOT, "bench", "http-floor", "wrangler.toml"));
  try {
    const isolate = await devtools(inspectorPort(floor.url));
    figures.floor = await measure("floor", floor.url, { path: (name) => `/${name}`, isolate });
    isolate.close();
    figures.floorDirect = await measure("floor (direct)", await floor.directUrl(), { path: (name) => `/${name}` });
  } finally {
    await floor.stop();
  }
  rounds.push(figures);
}

// The median round per server and content type (rounds alternate servers, so a burst of
// machine noise lands on one round, not on one server).
const median = (values) => values.sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
const servers = Object.keys(rounds[0]);
const best = Object.fromEntries(servers.map((server) => [server, Object.fromEntries(Object.keys(BODIES).map((type) => {
  const pick = median(rounds.map((r) => r[server][type].perSecond));
  return [type, rounds.map((r) => r[server][type]).find((r) => r.perSecond === pick)];
}))]));
const ratio = (a, b) => (a / b).toFixed(2);
console.log(`\n${os.cpus().length} x ${os.cpus()[0]?.model ?? "?"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.release()}, ${new Date().toISOString()}`);
console.log(`wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, ${ROUNDS} rounds (median shown), bodies: ${Object.entries(BODIES).map(([t, b]) => `${t} ${b.length} B`).join(", ")}\n`);
console.log("| server | content type | appends/s | p50 ms | p99 ms | failed | vs reference | vs floor (same path) | isolate µs per append |");
console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|");
const floorOf = { ours: "floor", oursDirect: "floorDirect", oursNoAssets: "floor", floor: "floor", floorDirect: "floorDirect" };
for (const server of servers) {
  for (const type of Object.keys(BODIES)) {
    const r = best[server][type];
    const vsFloor = floorOf[server] ? ratio(r.perSecond, best[floorOf[server]][type].perSecond) : "";
    // The isolate's busy time: the median round's, from a separate profiled run (JSON only).
    const micros = rounds.map((round) => round[server][type].isolateMicros).filter((m) => m !== undefined);
    const isolate = micros.length ? median(micros) : "";
    console.log(`| ${server} | ${type} | ${r.perSecond} | ${r.p50ms} | ${r.p99ms} | ${r.failed} | ${ratio(r.perSecond, best.reference[type].perSecond)} | ${vsFloor} | ${isolate} |`);
  }
}
console.log(`\n${JSON.stringify({ rounds }, null, 1)}`);
