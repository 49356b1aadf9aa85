// The official Durable Streams conformance suite against the Worker's /ds mount, through the
// key-injecting proxy (proxy.mjs). DS_TARGET=reference runs it against the Node reference server.
import { rmSync } from "node:fs";
import { beforeAll, afterAll } from "vitest";
import { runConformanceTests } from "@durable-streams/server-conformance-tests";
import { startServer, tempDir, TEST_KEY } from "../server.mjs";
import { startAuthProxy } from "./proxy.mjs";

const config = { baseUrl: "http://127.0.0.1:1/unset" };
let stop = async () => {};

beforeAll(async () => {
  if (process.env.DS_TARGET === "reference") {
    const { DurableStreamTestServer } = await import("@durable-streams/server");
    const dataDir = tempDir("reference-");
    const reference = new DurableStreamTestServer({ port: 0, dataDir });
    config.baseUrl = await reference.start();
    stop = async () => {
      await reference.stop();
      rmSync(dataDir, { recursive: true, force: true });
    };
    return;
  }
  // Long-polls answer 204 after 3 s instead of 20 s so the suite's timeout tests finish quickly.
  const server = await startServer({ vars: { DS_LONG_POLL_MS: "3000" } });
  const proxy = await startAuthProxy(server.url, TEST_KEY);
  config.baseUrl = `${proxy.url}/ds`;
  stop = async () => {
    await proxy.close();
    await server.stop();
    // Vitest ends its workers without running the exit handler that clears server.mjs's
    // directories.
    rmSync(server.persist, { recursive: true, force: true });
  };
});

afterAll(() => stop());

runConformanceTests(config);
