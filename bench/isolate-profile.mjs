// What the isolate does per published message, ours against the floor's: V8's CPU profiler
// samples both isolates (through each `wrangler dev`'s DevTools endpoint) while `dstream bench`
// runs one phase against both, and the samples are summed by what was running.
//
//   node bench/isolate-profile.mjs --ours URL --floor URL/sql --api-key KEY [--phases single,fanout]
//     [--rounds 3] [--dstream target/release/dstream]
//
// Both servers must be `wrangler dev` processes on this machine started with --inspector-port
// (scripts/bench.sh runs this on its two). The isolate is where the Worker's JavaScript and wasm
// run, and the runtime calls they make (SQL, socket sends); workerd's own threads are not in it.
// V8 samples by the wall clock, so a loaded machine inflates every figure: each row is the
// median of several rounds. The samples are sorted into what is stable from one run to the
// next: our wasm, the garbage collector, and the rest (JavaScript and the runtime calls it makes,
// which V8 attributes now to the call, now to its caller). Function names of our wasm need a
// build that keeps them (profile.release `strip = false` and wasm-opt `-g`); the sums need none.
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { busyMicros, CATEGORIES, devtools, inspectorPort } from "./devtools.mjs";

const { values: args } = parseArgs({
  options: {
    ours: { type: "string" },
    floor: { type: "string" },
    "api-key": { type: "string" },
    phases: { type: "string", default: "single,fanout" },
    rounds: { type: "string", default: "3" },
    dstream: { type: "string", default: "target/release/dstream" },
  },
});
if (!args.ours || !args.floor || !args["api-key"]) {
  console.error("usage: node bench/isolate-profile.mjs --ours URL --floor URL/sql --api-key KEY [--phases single,fanout]");
  process.exit(2);
}
// Messages published per phase (each fans out to 100 subscribers in `fanout`).
const PUBLISHES = { single: 10_000, fanout: 2_000 };
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const sessions = { ours: await devtools(inspectorPort(args.ours)), floor: await devtools(inspectorPort(args.floor)) };
const rounds = Number(args.rounds);
console.log(`Median of ${rounds} rounds (busy µs of the isolate per publish; rate: the median round's).\n`);
console.log(`| phase | isolate | rate | busy µs per publish | ${CATEGORIES.join(" | ")} |`);
console.log(`|---|---|---:|---:|${CATEGORIES.map(() => "---:").join("|")}|`);
for (const phase of args.phases.split(",")) {
  const publishes = PUBLISHES[phase];
  if (!publishes) throw new Error(`unknown phase ${phase} (single, fanout)`);
  const measured = { ours: [], floor: [] };
  for (let round = 0; round < rounds; round++) {
    for (const session of Object.values(sessions)) await session.call("Profiler.start");
    const run = spawnSync(args.dstream, [
      "--url", args.ours, "--api-key", args["api-key"], "bench", "--phases", phase, "--floor", args.floor, "--rounds", "1",
      "--messages", String(PUBLISHES.single), "--fanout-messages", String(PUBLISHES.fanout),
    ]);
    const profiles = {};
    for (const [name, session] of Object.entries(sessions)) profiles[name] = (await session.call("Profiler.stop")).profile;
    if (run.status !== 0) throw new Error(`dstream bench failed:\n${run.stderr}`);
    // The row's cells: | name | messages | seconds | rate | floor | vs floor | notes |
    const cells = run.stdout.toString().split("\n").find((line) => /^\| (publish|fan-out)/.test(line)).split("|").map((cell) => cell.trim());
    const rates = { ours: cells[4], floor: cells[5] };
    for (const name of ["ours", "floor"]) measured[name].push({ rate: rates[name], ...busyMicros(profiles[name], publishes) });
  }
  for (const name of ["ours", "floor"]) {
    const middle = median(measured[name].map((m) => m.busy));
    const round = measured[name].find((m) => m.busy === middle);
    const cells = CATEGORIES.map((c) => median(measured[name].map((m) => m[c])).toFixed(0));
    console.log(`| ${phase} | ${name} | ${round.rate} | ${middle.toFixed(0)} | ${cells.join(" | ")} |`);
  }
}
for (const session of Object.values(sessions)) session.close();
// wrangler's inspector proxy does not always finish the closing handshake.
process.exit(0);
