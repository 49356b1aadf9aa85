// Runs the built Worker on real workerd (through `wrangler dev`) for tests and benchmarks.
//
// Each server gets its own generated wrangler config (the project's wrangler.toml without the
// build step, with variable overrides), its own .dev.vars, a free port and a persistence
// directory, so a test can stop workerd and start it again on the same storage.

import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseToml } from "smol-toml";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const TEST_KEY = "test-key";

/** What this process started: servers still running and the directories `tempDir` made. All of
 *  it goes when the process exits, so test and benchmark runs leave no workerd and no storage
 *  behind (each server's persistence is hundreds of MB after some tests). KEEP_TEST_DIRS=1 keeps
 *  the directories for a post-mortem. */
const running = new Set();
const madeDirs = [];
process.on("exit", () => {
  for (const child of running) killGroup(child, "SIGKILL");
  if (process.env.KEEP_TEST_DIRS === "1") return;
  for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix = "ds-") {
  const base = join(ROOT, "miniflare-tests", ".tmp");
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, prefix));
  madeDirs.push(dir);
  return dir;
}

/** The lowest port of the kernel's range for outgoing connections (a port in that range can be
 *  taken by any connection on the machine between our check and wrangler's bind). */
function ephemeralLow() {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
  } catch {
    return 32768;
  }
}

/** A port nobody listens on, below the ephemeral range so that no outgoing connection takes it
 *  before wrangler binds it. Another listener can still appear: launchWrangler retries then. */
export async function freePort() {
  const below = ephemeralLow();
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * (below - 20000));
    const free = await new Promise((res) => {
      const srv = createServer();
      srv.once("error", () => res(false));
      srv.listen(port, "127.0.0.1", () => srv.close(() => res(true)));
    });
    if (free) return port;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the Worker. Options:
 *   persist: directory for Durable Object and R2 storage (kept across restarts)
 *   vars:    { NAME: "value" } overriding wrangler.toml [vars]
 *   apiKey:  the API_KEY secret; null leaves it unset (the server must refuse everything)
 *   secrets: { NAME: "value" } more secrets (.dev.vars lines; plain values without quotes or newlines)
 *   config:  more top-level wrangler configuration (e.g. a binding wrangler.toml leaves commented out)
 *   port:    the port to serve on (default: a free one), e.g. a restarted server's previous one
 */
export async function startServer({ persist = tempDir("persist-"), vars = {}, apiKey = TEST_KEY, secrets = {}, config: extra = {}, log = false, port } = {}) {
  const entry = join(ROOT, "build", "index.js");
  if (!existsSync(entry)) {
    throw new Error(`${entry} is missing: build the Worker first (bash scripts/build-worker.sh)`);
  }
  const config = parseToml(readFileSync(join(ROOT, "wrangler.toml"), "utf8"));
  const configDir = tempDir("config-");
  // Serve a private copy of the build: a rebuild of build/ while this server runs must not
  // hot-reload it (wrangler watches its entry point) and drop connections mid-test.
  cpSync(join(ROOT, "build"), join(configDir, "build"), { recursive: true });
  delete config.build;
  config.main = join(configDir, "build", "index.js");
  if (config.assets) {
    // The console's static files, copied for the same reason (wrangler watches them too).
    cpSync(join(ROOT, config.assets.directory), join(configDir, "assets"), { recursive: true });
    config.assets.directory = join(configDir, "assets");
  }
  config.vars = { ...config.vars, ...vars };
  Object.assign(config, extra);
  writeFileSync(join(configDir, "wrangler.json"), JSON.stringify(config, null, 2));
  const devVars = { ...(apiKey == null ? {} : { API_KEY: apiKey }), ...secrets };
  writeFileSync(join(configDir, ".dev.vars"), Object.entries(devVars).map(([name, value]) => `${name}=${value}\n`).join(""));
  const server = await launchWrangler(join(configDir, "wrangler.json"), { persist, log, port });
  const stop = server.stop;
  return {
    ...server,
    async stop(options) {
      await stop(options);
      rmSync(configDir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `wrangler dev` on a config file, on a free port, and waits until `/health` answers.
 * Returns { url, wsUrl, persist, output(), directUrl(), stop({ crash }) }.
 */
export async function launchWrangler(configFile, { persist = tempDir("persist-"), log = false, port } = {}) {
  // A port taken between our check and wrangler's bind (another server on a shared machine) ends
  // wrangler at once; try other ports, or the same one a little later when the caller chose it.
  for (let attempt = 1; ; attempt++) {
    try {
      return await launchWranglerOnce(configFile, { persist, log, port: port ?? (await freePort()) });
    } catch (error) {
      if (!(error instanceof PortTaken) || attempt === 5) throw error;
      if (port != null) await sleep(1_000);
    }
  }
}

class PortTaken extends Error {}

async function launchWranglerOnce(configFile, { persist, log, port }) {
  const inspector = await freePort();
  const wrangler = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
  const child = spawn(
    process.execPath,
    [wrangler, "dev", "-c", configFile, "--ip", "127.0.0.1", "--port", String(port),
      "--inspector-port", String(inspector), "--persist-to", persist, "--log-level", log ? "log" : "warn", "--show-interactive-dev-session=false"],
    {
      cwd: dirname(configFile),
      // Without wrangler's local trace store (X_LOCAL_OBSERVABILITY), which records every event
      // in SQLite: ~20 % of workerd's CPU per event, more as the store grows (bench/RESULTS.md,
      // "Local observability"). No test reads it; set it to true to keep it.
      env: { X_LOCAL_OBSERVABILITY: "false", ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    },
  );
  let output = "";
  const collect = (chunk) => {
    output = (output + chunk.toString()).slice(-20000);
    if (log) process.stderr.write(chunk);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  let exited = false;
  running.add(child);
  child.on("exit", () => {
    exited = true;
    running.delete(child);
  });
  const url = `http://127.0.0.1:${port}`;
  // Generous: wrangler and workerd start slowly on a loaded 2-core machine.
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (exited) {
      const message = `wrangler dev exited before serving:\n${output}`;
      throw /Address already in use/.test(output) ? new PortTaken(message) : new Error(message);
    }
    if (Date.now() > deadline) {
      killGroup(child, "SIGKILL");
      throw new Error(`wrangler dev did not serve ${url} within 120 s:\n${output}`);
    }
    try {
      // Bounded: a stranger on the port that accepts and never answers must not hang the loop.
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
      // Only our own wrangler's answer counts; another server on the port means wrangler will exit.
      if (res.ok && listenersOf(child.pid).includes(port)) break;
    } catch {}
    await sleep(150);
  }
  return {
    url,
    wsUrl: url.replace(/^http/, "ws"),
    persist,
    output: () => output,
    /** The workerd behind wrangler's dev proxy (for benchmarks: production has no such hop). */
    directUrl: () => workerdBehind(child.pid, port),
    /** Stops the server: SIGTERM (then SIGKILL after 10 s), or `{ crash: true }` for an
     *  immediate SIGKILL of wrangler and workerd, as in a power cut. */
    async stop({ crash = false } = {}) {
      if (exited) return;
      const done = new Promise((r) => child.once("exit", r));
      killGroup(child, crash ? "SIGKILL" : "SIGTERM");
      await Promise.race([done, sleep(10_000)]);
      if (!exited) killGroup(child, "SIGKILL");
      await Promise.race([done, sleep(5_000)]);
    },
  };
}

/** The entry socket of the workerd that runs the Worker itself: a descendant of wrangler, other
 *  than the proxy's public port, that answers `/health`. */
async function workerdBehind(rootPid, publicPort) {
  const ports = listenersOf(rootPid).filter((port) => port !== publicPort);
  for (const port of ports) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) return `http://127.0.0.1:${port}`;
    } catch {}
  }
  throw new Error("could not find the workerd behind wrangler dev's proxy");
}

/** The TCP ports that a process or any of its descendants listen on. */
function listenersOf(rootPid) {
  const children = new Map();
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const parent = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")[1];
      children.set(parent, [...(children.get(parent) ?? []), pid]);
    } catch {}
  }
  const family = [String(rootPid)];
  const walk = (pid) => (children.get(String(pid)) ?? []).forEach((child) => { family.push(child); walk(child); });
  walk(rootPid);
  return execFileSync("ss", ["-ltnpH"]).toString().split("\n")
    .filter((line) => family.some((pid) => line.includes(`pid=${pid},`)))
    .map((line) => Number(line.trim().split(/\s+/)[3].split(":").pop()));
}

/** The pid of the workerd that runs the Worker: the process listening on its direct port. */
export async function workerdPid(server) {
  const port = new URL(await server.directUrl()).port;
  return Number(execFileSync("ss", ["-ltnpH", `sport = :${port}`]).toString().match(/pid=(\d+),/)[1]);
}

/** A process's resident set size, in KiB. */
export function rssKiB(pid) {
  return Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB$/m)[1]);
}

function killGroup(child, signal = "SIGTERM") {
  try {
    process.kill(-child.pid, signal);
  } catch {}
}
