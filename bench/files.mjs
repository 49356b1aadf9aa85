// Upload and download throughput of one large file through the local Worker, three ways:
//   single put      one PUT with Content-Length (one R2 put, streamed);
//   server parts    one PUT without Content-Length (the Worker cuts it into FILE_PART_BYTES
//                   parts, one sent while the next is read);
//   parallel parts  the parts API with --concurrency parts in flight, as `dstream files put`
//                   sends a large file;
// next to `cp` of the same file on this disk (and `cp` followed by `sync` of the copy) as the
// physical reference. During each upload the RSS of the workerd that runs the Worker is sampled
// every 100 ms; the table has its peak in each half of the upload. Requests go to that workerd directly, not through wrangler's dev proxy (a hop
// production does not have). Every download is counted to the byte; one download per way is
// also checked against the file's SHA-256, outside the timings. What it writes (the file, the
// copy, the bucket) is removed at the end.
//
// Run: bash scripts/build-worker.sh && node_modules/.bin/node bench/files.mjs [--mib 256] [--runs 3]
//        [--concurrency 4] [--part-mib 16] [--server-part-mib 8] [--ways "single put,server parts,parallel parts"]
// Prints the setup and a Markdown table (bench/RESULTS.md, "Files").

import { execFileSync } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import { closeSync, createReadStream, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { ROOT, TEST_KEY, rssKiB, startServer, tempDir, workerdPid } from "../miniflare-tests/server.mjs";

const { values: options } = parseArgs({
  options: {
    mib: { type: "string", default: "256" },
    runs: { type: "string", default: "3" },
    concurrency: { type: "string", default: "4" },
    "part-mib": { type: "string", default: "16" },
    "server-part-mib": { type: "string", default: "8" },
    ways: { type: "string", default: "single put,server parts,parallel parts" },
  },
});
const MiB = 1024 * 1024;
const size = Number(options.mib) * MiB;
const runs = Number(options.runs);
const concurrency = Number(options.concurrency);
const partSize = Number(options["part-mib"]) * MiB;
const serverPartSize = Number(options["server-part-mib"]) * MiB;
const auth = { authorization: `Bearer ${TEST_KEY}`, "accept-encoding": "identity" };

const work = tempDir("bench-files-");
const source = join(work, "source.bin");
const copy = join(work, "copy.bin");

/** Writes `size` random bytes to `source`, returning their SHA-256. */
function writeSource() {
  const hash = createHash("sha256");
  const fd = openSync(source, "w");
  const block = Buffer.alloc(MiB);
  for (let written = 0; written < size; written += MiB) {
    randomFillSync(block);
    hash.update(block);
    writeSync(fd, block);
  }
  closeSync(fd);
  return hash.digest("hex");
}

/** Seconds `work` takes. */
async function timed(work) {
  const start = process.hrtime.bigint();
  const result = await work();
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, result };
}

/** Runs `upload` while sampling the workerd's RSS; returns the seconds and the peak RSS (KiB)
 *  in the first and in the second half of the upload's time. Garbage collection makes single
 *  peaks noisy; memory that grew with the bytes sent would show as a higher second half. */
async function sampled(pid, upload) {
  const samples = [];
  const sample = () => samples.push({ at: process.hrtime.bigint(), rss: rssKiB(pid) });
  sample();
  const sampler = setInterval(sample, 100);
  try {
    const start = process.hrtime.bigint();
    const { seconds } = await timed(upload);
    sample();
    const middle = start + BigInt(Math.round((seconds / 2) * 1e9));
    const peak = (half) => Math.max(...samples.filter(half).map((s) => s.rss));
    return { seconds, firstHalf: peak((s) => s.at <= middle), secondHalf: peak((s) => s.at > middle) };
  } finally {
    clearInterval(sampler);
  }
}

async function expectStatus(res, status) {
  if (res.status !== status) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  return res;
}

function fileBody() {
  return Readable.toWeb(createReadStream(source, { highWaterMark: MiB }));
}

const ways = {
  "single put": async (base, key) => {
    const headers = { ...auth, "content-length": String(size) };
    await expectStatus(await fetch(`${base}/v1/files/${key}`, { method: "PUT", body: fileBody(), duplex: "half", headers }), 201);
  },
  "server parts": async (base, key) => {
    await expectStatus(await fetch(`${base}/v1/files/${key}`, { method: "PUT", body: fileBody(), duplex: "half", headers: auth }), 201);
  },
  "parallel parts": async (base, key) => {
    const created = await (await expectStatus(await fetch(`${base}/v1/files/${key}?uploads&partSize=${partSize}`, { method: "POST", headers: auth }), 201)).json();
    const at = `${base}/v1/files/${key}?uploadId=${encodeURIComponent(created.uploadId)}`;
    const file = await open(source);
    const count = Math.ceil(size / partSize);
    const parts = [];
    let next = 1;
    const sender = async () => {
      for (let number = next++; number <= count; number = next++) {
        const length = Math.min(partSize, size - (number - 1) * partSize);
        const bytes = Buffer.alloc(length);
        await file.read(bytes, 0, length, (number - 1) * partSize);
        const res = await fetch(`${at}&partNumber=${number}`, { method: "PUT", body: bytes, headers: auth });
        const { partNumber, etag } = await (await expectStatus(res, 200)).json();
        parts.push({ partNumber, etag });
      }
    };
    try {
      await Promise.all(Array.from({ length: concurrency }, sender));
    } finally {
      await file.close();
    }
    parts.sort((a, b) => a.partNumber - b.partNumber);
    await expectStatus(await fetch(at, { method: "POST", headers: auth, body: JSON.stringify({ parts }) }), 201);
  },
};

/** Downloads `key`, counting (and with `hash`, hashing) the bytes. */
async function download(base, key, hash) {
  const res = await expectStatus(await fetch(`${base}/v1/files/${key}`, { headers: auth }), 200);
  let received = 0;
  for await (const chunk of res.body) {
    received += chunk.length;
    hash?.update(chunk);
  }
  if (received !== size) throw new Error(`downloaded ${received} bytes of ${size}`);
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const rate = (seconds) => (size / MiB / seconds).toFixed(0);
const mib = (kib) => (kib / 1024).toFixed(0);
const shell = (command, args) => execFileSync(command, args, { cwd: ROOT }).toString().trim();

const digest = writeSource();
const copies = [];
for (let run = 0; run < runs; run++) {
  rmSync(copy, { force: true });
  const plain = await timed(async () => execFileSync("cp", [source, copy]));
  const synced = await timed(async () => execFileSync("sync", [copy]));
  copies.push({ plain: plain.seconds, synced: plain.seconds + synced.seconds });
}
rmSync(copy, { force: true });

const server = await startServer({ vars: { FILE_PART_BYTES: String(serverPartSize) } });
const rows = [];
let baseline;
try {
  const base = await server.directUrl();
  const pid = await workerdPid(server);
  await fetch(`${base}/v1/files?limit=1`, { headers: auth }); // warm-up
  baseline = rssKiB(pid);
  for (const way of options.ways.split(",")) {
    const upload = ways[way];
    if (!upload) throw new Error(`unknown way ${JSON.stringify(way)}; the ways: ${Object.keys(ways).join(", ")}`);
    const key = `bench/${way.replace(/ /g, "-")}.bin`;
    const uploads = [];
    const downloads = [];
    for (let run = 0; run < runs; run++) {
      uploads.push(await sampled(pid, () => upload(base, key)));
      downloads.push((await timed(() => download(base, key))).seconds);
    }
    const hash = createHash("sha256");
    await download(base, key, hash);
    if (hash.digest("hex") !== digest) throw new Error(`${way}: the download differs from the file`);
    rows.push({ way, uploads, downloads });
  }
} finally {
  await server.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(server.persist, { recursive: true, force: true });
}

const cpu = cpus()[0]?.model ?? "unknown";
console.log(`- date: ${new Date().toISOString()}`);
console.log(`- machine: ${cpus().length} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, kernel ${shell("uname", ["-r"])}, disk ${shell("df", ["--output=source,fstype", work.replace(/[^/]+$/, "")]).split("\n")[1]}`);
console.log(`- commit: ${shell("git", ["rev-parse", "--short", "HEAD"])}${shell("git", ["status", "--porcelain"]) ? " (with uncommitted changes)" : ""}`);
const version = (name) => JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
console.log(`- software: node ${process.version}, wrangler ${version("wrangler")}, workerd ${version("@cloudflare/workerd-linux-64")}`);
console.log(`- file: ${size / MiB} MiB of random bytes; ${runs} runs each, median (min–max); parts: server ${serverPartSize / MiB} MiB, parallel ${partSize / MiB} MiB × ${concurrency} in flight`);
console.log(`- workerd RSS before the uploads: ${mib(baseline)} MiB`);
console.log("");
console.log("| way | upload MiB/s | download MiB/s | workerd peak RSS in the 1st / 2nd half of the upload (MiB) |");
console.log("|---|---:|---:|---:|");
const span = (values, format) => `${format(median(values))} (${format(Math.max(...values))}–${format(Math.min(...values))})`;
console.log(`| \`cp\` (page cache) | ${span(copies.map((c) => c.plain), rate)} | | |`);
console.log(`| \`cp\` + \`sync\` of the copy | ${span(copies.map((c) => c.synced), rate)} | | |`);
for (const { way, uploads, downloads } of rows) {
  const halves = uploads.map((u) => `${mib(u.firstHalf)} / ${mib(u.secondHalf)}`).join(", ");
  console.log(`| ${way} | ${span(uploads.map((u) => u.seconds), rate)} | ${span(downloads, rate)} | ${halves} |`);
}
