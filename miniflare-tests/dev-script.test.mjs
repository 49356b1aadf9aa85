// scripts/dev.sh, as a newcomer runs it: the caller's wrangler flags (--port, --persist-to, --var)
// pass through without clashing with dev.sh's defaults, the server answers on the chosen port
// with its data in the chosen directory, a second start does not rebuild the Worker, and a busy
// port is refused at once instead of being announced as the new server.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { ROOT, freePort, tempDir } from "./server.mjs";
import { sleep } from "./ws-client.mjs";

// dev.sh first installs and builds what is missing (minutes when build/ is stale), then starts
// wrangler; the bound only keeps a broken script from hanging the suite.
const START_TIMEOUT_MS = 15 * 60_000;

/** Spawns `scripts/dev.sh ...args` in its own process group, collecting what it prints. */
function spawnDevScript(args) {
  const child = spawn("bash", ["scripts/dev.sh", ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1", CI: "true" },
  });
  let output = "";
  child.stdout.on("data", (chunk) => { output += chunk; });
  child.stderr.on("data", (chunk) => { output += chunk; });
  return { child, output: () => output };
}

/** Runs `scripts/dev.sh ...args` and waits until it has printed its next steps. */
async function startDevScript(args) {
  const { child, output } = spawnDevScript(args);
  let exited = false;
  const exit = new Promise((resolve) => child.once("exit", () => { exited = true; resolve(); }));
  const stop = async () => {
    if (exited) return;
    process.kill(-child.pid, "SIGTERM");
    await Promise.race([exit, sleep(15_000)]);
    if (!exited) process.kill(-child.pid, "SIGKILL");
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!output().includes("Try this next")) {
    if (exited || Date.now() > deadline) {
      await stop();
      assert.fail(`dev.sh ${args.join(" ")} did not start:\n${output()}`);
    }
    await sleep(250);
  }
  return { output, stop };
}

const apiKey = () => readFileSync(join(ROOT, ".dev.vars"), "utf8").match(/^API_KEY=(.*)$/m)[1];

const publish = (port, body) =>
  fetch(`http://127.0.0.1:${port}/v1/stream/dev-script`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey()}` },
    body,
  });

test("--port and --persist-to pass through: the server answers there and keeps its data there", { timeout: START_TIMEOUT_MS + 60_000 }, async () => {
  const port = await freePort();
  const persist = tempDir("dev-script-");
  const dev = await startDevScript(["--port", String(port), "--persist-to", persist, "--inspector-port", String(await freePort())]);
  try {
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(health.status, 200);
    assert.match(dev.output(), new RegExp(`curl -s -X POST http://127\\.0\\.0\\.1:${port}/v1/stream/orders -H 'Authorization: Bearer ${apiKey()}'`));
    assert.match(dev.output(), new RegExp(`local data: +${persist}`));
    const published = await publish(port, '{"hello":"dev"}');
    assert.equal(published.status, 201, await published.text());
    assert.ok(readdirSync(persist).length > 0, "the persist directory holds the Durable Object's storage");
  } finally {
    await dev.stop();
  }
});

test("--var overrides a wrangler.toml variable, and a second start reuses the build", { timeout: START_TIMEOUT_MS + 60_000 }, async () => {
  const port = await freePort();
  const dev = await startDevScript(["--port", String(port), "--persist-to", tempDir("dev-script-"), "--var", "MAX_FRAME_BYTES:1024",
    "--inspector-port", String(await freePort())]);
  try {
    const tooLarge = await publish(port, JSON.stringify({ text: "x".repeat(2000) }));
    assert.equal(tooLarge.status, 413, await tooLarge.text());
    assert.match(dev.output(), /build\/ is up to date/);
    assert.doesNotMatch(dev.output(), /building the Worker/);
  } finally {
    await dev.stop();
  }
});

test("a port that is already in use is refused before anything starts, not announced as serving", { timeout: 60_000 }, async () => {
  // Anything that accepts connections (here a server that never answers) would pass the
  // readiness check; wrangler itself fails on the busy port only later.
  const busy = createServer(() => {});
  await new Promise((resolve) => busy.listen(0, "127.0.0.1", resolve));
  const { port } = busy.address();
  try {
    const { child, output: printed } = spawnDevScript(["--port", String(port), "--persist-to", tempDir("dev-script-")]);
    const code = await new Promise((resolve) => child.once("exit", resolve));
    const output = printed();
    assert.equal(code, 1, output);
    assert.match(output, new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
    assert.match(output, new RegExp(`--port ${port + 1}`));
    assert.doesNotMatch(output, /durable-stream is serving|⛅️|Starting local server|installing|building/);
  } finally {
    busy.close();
  }
});
