// Serves the built Worker for tests written in other languages (the Rust client's tests):
//   node miniflare-tests/serve.mjs [--persist DIR] [--var NAME=VALUE ...] [--no-api-key]
// Prints "READY <url>" once serving; stops on SIGTERM/SIGINT or when stdin closes.
import { startServer, TEST_KEY } from "./server.mjs";

const args = process.argv.slice(2);
const vars = {};
let persist;
let apiKey = TEST_KEY;
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === "--persist") persist = args[++i];
  else if (arg === "--var") {
    const [name, ...value] = args[++i].split("=");
    if (name === "API_KEY") apiKey = value.join("=");
    else vars[name] = value.join("=");
  } else if (arg === "--no-api-key") apiKey = null;
  else {
    console.error(`unknown argument ${arg}`);
    process.exit(2);
  }
}

const server = await startServer({ persist, vars, apiKey });
console.log(`READY ${server.url}`);
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await server.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
