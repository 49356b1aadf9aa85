// What the subject directory costs a publisher: single publishes (`dstream bench --phases
// single`) against two Workers in the same run, one reporting to the directory
// (DIRECTORY_REPORT_MS=5000, the default) and one not (DIRECTORY_REPORT_MS=0), taking turns.
// Besides the rate, it measures the CPU time of the workerd that runs each Worker (user +
// system, from /proc) per publish: on a shared machine the rate moves with everything else
// that runs, while the CPU a publish costs does much less. The order of the two alternates
// every round (AB, BA, …), and each round's ratio is taken before the median.
//
//   node bench/directory-cost.mjs [--rounds 5] [--dstream target/release/dstream] [-- dstream bench options]

import { execFileSync } from "node:child_process";
import { cpuSeconds, listener, loadAverage } from "./process-cpu.mjs";
import { startServer, TEST_KEY } from "../miniflare-tests/server.mjs";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
};
const rounds = Number(option("--rounds", "5"));
const dstream = option("--dstream", "target/release/dstream");
const extra = args.includes("--") ? args.slice(args.indexOf("--") + 1) : [];

function singlePublishes(url) {
  const out = execFileSync(dstream, ["--url", url, "--api-key", TEST_KEY, "bench", "--phases", "single", ...extra], { stdio: ["ignore", "pipe", "ignore"] }).toString();
  const row = out.split("\n").find((l) => l.startsWith("| publish"));
  const cells = row.split("|").map((c) => c.trim());
  return { messages: Number(cells[2]), rate: Number(cells[4].split(" ")[0]) };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const variants = [
  { name: "reporting (DIRECTORY_REPORT_MS=5000)", vars: { DIRECTORY_REPORT_MS: "5000" } },
  { name: "not reporting (DIRECTORY_REPORT_MS=0)", vars: { DIRECTORY_REPORT_MS: "0" } },
];
for (const variant of variants) {
  variant.server = await startServer({ vars: variant.vars });
  variant.pid = listener(await variant.server.directUrl());
  variant.runs = [];
}
try {
  console.log("| round | variant | rate (msg/s) | workerd CPU per publish (µs) | load average |");
  console.log("|---:|---|---:|---:|---|");
  for (let round = 1; round <= rounds; round++) {
    for (const variant of round % 2 ? variants : [...variants].reverse()) {
      const load = loadAverage();
      const before = cpuSeconds(variant.pid);
      const { messages, rate } = singlePublishes(variant.server.url);
      const micros = ((cpuSeconds(variant.pid) - before) / messages) * 1e6;
      variant.runs.push({ rate, micros });
      console.log(`| ${round} | ${variant.name} | ${rate} | ${micros.toFixed(1)} | ${load} |`);
    }
  }
  const [on, off] = variants.map((v) => v.runs);
  const ratios = (key) => on.map((run, k) => run[key] / off[k][key]);
  console.log();
  console.log("| median | reporting | not reporting | median of the rounds' ratios (reporting ÷ not) |");
  console.log("|---|---:|---:|---:|");
  for (const [label, key, digits] of [["rate (msg/s)", "rate", 0], ["workerd CPU per publish (µs)", "micros", 1]]) {
    const [a, b] = [on, off].map((runs) => median(runs.map((r) => r[key])).toFixed(digits));
    console.log(`| ${label} | ${a} | ${b} | ${median(ratios(key)).toFixed(3)} |`);
  }
} finally {
  for (const variant of variants) await variant.server.stop();
}
