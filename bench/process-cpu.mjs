// The CPU time of the workerd serving a URL, read from /proc: what the benchmarks that compare
// two variants of the Worker measure besides the rate (other load on the machine disturbs it
// much less than the rate).

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const TICKS_PER_SECOND = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());

/** The pid of the process listening on the port of `url` (the workerd running the Worker). */
export function listener(url) {
  const port = new URL(url).port;
  const line = execFileSync("ss", ["-ltnpH"]).toString().split("\n").find((l) => l.includes(`:${port} `));
  const pid = /pid=(\d+)/.exec(line ?? "")?.[1];
  if (!pid) throw new Error(`no process listens on ${url}`);
  return Number(pid);
}

/** CPU seconds (user + system) a process has used. */
export function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** The machine's load averages (1, 5 and 15 minutes), as one string. */
export function loadAverage() {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}
