// The web console (/console, static assets of the Worker) in a real headless Chromium, against
// the real Worker on workerd: signing in, the subject directory, the message browser, the live
// tail, publishing, consumers, the state document and files. Each view is saved as a screenshot
// under miniflare-tests/.tmp/screenshots (docs/console/ holds a copy of each for the README).
//
// Run: bash scripts/build-worker.sh && node_modules/.bin/node --test miniflare-tests/console.test.mjs

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { launchBrowser, screenshot } from "./browser.mjs";
import { AUTH, httpCall } from "./http-client.mjs";
import { ROOT, startServer, TEST_KEY } from "./server.mjs";
import { claims, hs256, TOKEN_SECRET } from "./tokens.mjs";
import { connect, sleep, uniqueSubject, until } from "./ws-client.mjs";

// Generous bounds for a loaded 2-core machine; every wait ends as soon as its condition holds.
const WAIT_MS = 30_000;
const TEST_TIMEOUT_MS = 180_000;

let server;
let browser;
const opened = [];
/** Every credential a page signed in with: none may appear in an HTTP URL. */
const credentials = new Set([TEST_KEY]);

before(async () => {
  // Subjects report to the directory every second (default 5 s), so the list follows sooner.
  const vars = { DIRECTORY_REPORT_MS: "1000" };
  [server, browser] = await Promise.all([startServer({ vars, secrets: { TOKEN_SECRET } }), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// Every page is closed after its test, and no HTTP request it made may carry the credential in
// its URL (the WebSocket of the live tail is the one documented exception).
afterEach(async () => {
  const pages = opened.splice(0);
  for (const { context } of pages) await context.close();
  for (const { requests } of pages) {
    assert.deepEqual(requests.filter((url) => [...credentials].some((secret) => url.includes(secret))), [], "the credential must never be in an HTTP URL");
  }
});

/** A fresh browser context (its own sessionStorage) with the console open at `hash`. */
async function openConsole(hash = "", { viewport = { width: 1280, height: 800 }, colorScheme = "light" } = {}) {
  const context = await browser.newContext({ viewport, colorScheme });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const requests = [];
  page.on("request", (request) => requests.push(request.url()));
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(error));
  opened.push({ context, requests });
  await page.goto(`${server.url}/console/${hash}`);
  return { page, requests, pageErrors };
}

/** Signs in with `key` and waits for the signed-in shell. */
async function signIn(page, key = TEST_KEY) {
  credentials.add(key);
  await page.getByLabel("API key or access token").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

const publish = (subject, data) => httpCall(server, "POST", `/v1/stream/${subject}`, { body: JSON.stringify(data) });

/** The element of message `seq` in the given list (".messages" or ".tail"). */
const messageIn = (page, list, seq) => page.locator(`${list} .message[data-seq="${seq}"]`);

/** The value of one of a subject page's numbers ("Messages", "Subscribers", …). */
const stat = (page, label) => page.locator(".stat").filter({ has: page.locator("dt", { hasText: label }) }).locator("dd");

test("the console is served at /console/ with its security headers, and preloads every module", { timeout: TEST_TIMEOUT_MS }, async () => {
  const redirect = await fetch(`${server.url}/console`, { redirect: "manual" });
  assert.equal(redirect.status, 307);
  assert.equal(redirect.headers.get("location"), "/console/");
  const page = await fetch(`${server.url}/console/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-security-policy"), /default-src 'self'/);
  const html = await page.text();
  // The Worker's own routes are untouched.
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
  assert.equal((await fetch(`${server.url}/console/_headers`)).status, 404);

  const source = join(ROOT, "console", "src");
  const modules = (await readdir(join(source, "js"), { recursive: true })).filter((file) => file.endsWith(".js") && !["app.js", "theme-boot.js"].includes(file));
  const missing = modules.filter((file) => !html.includes(`<link rel="modulepreload" href="/console/js/${file}">`));
  assert.deepEqual(missing, [], "index.html should preload every module");
});

describe("signing in", () => {
  test("a wrong key shows an error and keeps nothing", { timeout: TEST_TIMEOUT_MS }, async () => {
    const { page } = await openConsole();
    await page.getByLabel("API key or access token").fill("not-the-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    const error = page.getByRole("alert").filter({ hasText: "Could not sign in" });
    await error.waitFor();
    assert.match(await error.textContent(), /401 unauthorized.*Check the key/);
    assert.equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0);
    assert.equal(await page.getByRole("button", { name: "Sign out" }).isVisible(), false);
    await screenshot(page, "sign-in-error");
  });

  test("the key is kept in sessionStorage for the tab, survives a reload and goes on sign-out", { timeout: TEST_TIMEOUT_MS }, async () => {
    const { page, pageErrors } = await openConsole("#/files");
    await signIn(page);
    assert.equal(await page.evaluate(() => Object.values(sessionStorage).join()), TEST_KEY);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    await page.getByText("API key", { exact: true }).waitFor();
    await page.reload();
    await page.getByRole("heading", { name: "Files" }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.deepEqual(pageErrors, []);
  });

  test("an access token signs in, is named in the top bar, and the live tail connects with it", { timeout: TEST_TIMEOUT_MS }, async () => {
    const subject = uniqueSubject("console-token");
    // It may tail this subject only: listing files (the sign-in check) is 403, which still
    // proves the token valid.
    const token = hs256(claims({ sub: "console-web", allow: [{ subjects: [subject], actions: ["sub"] }] }));
    const { page } = await openConsole(`#/subject/${subject}/tail`);
    const sockets = [];
    page.on("websocket", (socket) => sockets.push(socket.url()));
    await signIn(page, token);
    await page.getByText("token console-web").waitFor();
    await page.getByRole("status").filter({ hasText: "Live" }).waitFor();
    await publish(subject, { for: "the token's tail" });
    await messageIn(page, ".tail", 1).waitFor();
    assert.match(sockets[0], /\?token=eyJ/);
  });

  test("an expired token is refused with the reason", { timeout: TEST_TIMEOUT_MS }, async () => {
    const { page } = await openConsole();
    const expired = hs256({ ...claims({ sub: "console-web" }), iat: 1_000_000, exp: 1_000_060 });
    credentials.add(expired);
    await page.getByLabel("API key or access token").fill(expired);
    await page.getByRole("button", { name: "Sign in" }).click();
    const error = page.getByRole("alert").filter({ hasText: "Could not sign in" });
    await error.waitFor();
    assert.match(await error.textContent(), /401 token_expired\)\. Ask the token's issuer for a fresh one\./);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  });

  test("the theme follows the system and the toggle overrides it", { timeout: TEST_TIMEOUT_MS }, async () => {
    const { page } = await openConsole("#/files", { colorScheme: "dark" });
    await signIn(page);
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const dark = await background();
    await page.getByRole("button", { name: "Switch to the light theme" }).click();
    assert.notEqual(await background(), dark);
    assert.equal(await page.evaluate(() => localStorage.getItem("dstream-console.theme")), "light");
  });
});

describe("subjects", () => {
  test("a subject appears after a publish, with live counts, and the prefix filter narrows the list", { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = `${uniqueSubject("console-dir")}.`;
    const orders = `${prefix}orders`;
    const audit = `${prefix}audit`;
    const { page } = await openConsole(`#/subjects?prefix=${prefix}`);
    await signIn(page);
    await page.getByText(`No subject starts with “${prefix}”.`).waitFor();

    for (let i = 1; i <= 3; i++) await publish(orders, { order: i });
    await publish(audit, { event: "created" });
    const ordersRow = page.getByRole("row").filter({ has: page.getByRole("link", { name: orders, exact: true }) });
    await ordersRow.waitFor();
    await page.getByRole("link", { name: audit, exact: true }).waitFor();

    // The counts follow new publishes while the page is open.
    const batch = Array.from({ length: 40 }, (_, i) => ({ order: 4 + i }));
    await httpCall(server, "POST", `/v1/stream/${orders}?batch=1`, { body: JSON.stringify(batch) });
    await ordersRow.locator('td[data-label="Messages"]').filter({ hasText: /^43$/ }).waitFor();

    // A client publishing about ten messages a second: the rate and its sparkline follow.
    const publisher = await connect(server, orders, { label: "publisher" });
    let publishing = true;
    const publishes = (async () => {
      for (let n = 44; publishing; n++) {
        await publisher.ok({ op: "pub", data: { order: n } });
        await sleep(100); // the pace of the publisher, not a wait for anything
      }
    })();
    try {
      await ordersRow.locator('td[data-label="Publish rate"]').filter({ hasText: /[1-9][\d.]*\/s/ }).waitFor();
      const samples = async () => (await ordersRow.locator("polyline").getAttribute("points").catch(() => "")).split(" ").length;
      await until(async () => (await samples()) >= 4, WAIT_MS, "four rate samples in the sparkline");
      await screenshot(page, "subjects");
    } finally {
      publishing = false;
      await publishes;
      publisher.close();
    }

    await page.getByLabel("Filter by prefix").fill(orders);
    await page.getByRole("link", { name: audit, exact: true }).waitFor({ state: "detached" });
    assert.equal(await page.getByRole("link", { name: orders, exact: true }).isVisible(), true);
  });

  test("on a phone in the dark theme the list reads as cards", { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = `${uniqueSubject("console-phone")}.`;
    for (const name of ["eu", "us"]) await publish(`${prefix}${name}`, { phone: true });
    const { page } = await openConsole(`#/subjects?prefix=${prefix}`, { viewport: { width: 390, height: 844 }, colorScheme: "dark" });
    await signIn(page);
    await page.getByRole("link", { name: `${prefix}us`, exact: true }).waitFor();
    await screenshot(page, "subjects-phone-dark");
    const tooWide = await page.evaluate(() =>
      [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > innerWidth).map((e) => `${e.tagName.toLowerCase()}.${e.className}`),
    );
    assert.deepEqual(tooWide, [], "nothing may reach beyond a 390 px screen");
  });
});

describe("a subject", () => {
  test("the message browser pages through messages by sequence, newest first, data exactly as stored", { timeout: TEST_TIMEOUT_MS }, async () => {
    const subject = uniqueSubject("console-msgs");
    const batch = Array.from({ length: 24 }, (_, i) => ({ order: i + 1, item: { sku: `A-${i + 1}`, qty: (i % 3) + 1 } }));
    await httpCall(server, "POST", `/v1/stream/${subject}?batch=1`, { body: JSON.stringify(batch) });
    // Beyond 2^53: JavaScript's JSON.parse would show 18446744073709552000.
    await httpCall(server, "POST", `/v1/stream/${subject}`, { body: '{"exact":18446744073709551617,"html":"<b>not bold</b>"}' });
    const { page } = await openConsole(`#/subject/${subject}/messages`);
    await signIn(page);

    const newest = messageIn(page, ".messages", 25);
    await newest.waitFor();
    assert.match(await newest.textContent(), /"exact": 18446744073709551617/);
    assert.match(await newest.textContent(), /"html": "<b>not bold<\/b>"/);
    assert.deepEqual(await page.locator(".messages .message").evaluateAll((cards) => cards.map((c) => Number(c.dataset.seq))), Array.from({ length: 20 }, (_, i) => 25 - i));
    await screenshot(page, "messages");

    await page.getByRole("link", { name: "Older" }).click();
    await messageIn(page, ".messages", 1).waitFor();
    assert.equal(await page.locator(".messages .message").count(), 5);
    await page.getByLabel("Go to sequence").fill("12");
    await page.getByRole("button", { name: "Go" }).click();
    await messageIn(page, ".messages", 12).waitFor();
    assert.equal(await page.locator(".messages .message").first().getAttribute("data-seq"), "12");
  });

  test("the live tail shows each message while a client publishes", { timeout: TEST_TIMEOUT_MS }, async () => {
    const subject = uniqueSubject("console-tail");
    await publish(subject, { before: "the tail" });
    const { page } = await openConsole(`#/subject/${subject}/tail`);
    const sockets = [];
    page.on("websocket", (socket) => sockets.push(socket.url()));
    await signIn(page);
    await page.getByRole("status").filter({ hasText: "Live" }).waitFor();

    const publisher = await connect(server, subject, { label: "publisher" });
    try {
      for (let i = 1; i <= 5; i++) {
        await publisher.ok({ op: "pub", data: { reading: i, sensor: "dev-1", celsius: 20 + i / 10 } });
        await messageIn(page, ".tail", i + 1).waitFor();
      }
    } finally {
      publisher.close();
    }
    // Only new messages, newest first; #1 was published before the tail opened.
    assert.deepEqual(await page.locator(".tail .message").evaluateAll((cards) => cards.map((c) => Number(c.dataset.seq))), [6, 5, 4, 3, 2]);
    await page.getByText("5 received").waitFor();
    await stat(page, "Subscribers").filter({ hasText: /^1$/ }).waitFor();
    await stat(page, "Messages").filter({ hasText: /^6$/ }).waitFor();
    await screenshot(page, "tail");
    // The WebSocket is the one place the credential is in a URL (browsers cannot set its headers).
    assert.match(sockets[0], new RegExp(`/v1/stream/${subject}\\?apiKey=${TEST_KEY}$`));
  });

  test("the publish form refuses invalid JSON before sending and stores valid JSON as written", { timeout: TEST_TIMEOUT_MS }, async () => {
    const subject = uniqueSubject("console-pub");
    const { page, requests } = await openConsole(`#/subject/${subject}/publish`);
    await signIn(page);
    const editor = page.getByLabel("Message (JSON)");
    const publishes = () => requests.filter((url) => url.endsWith(`/v1/stream/${subject}`)).length;
    const before = publishes();

    for (const [text, problem] of [
      ['{"order": 17,}', /Not valid JSON: expected a key in quotes, found "}" \(line 1, column 14\)/],
      ['{"a": 1, "a": 2}', /the key "a" is given twice/],
      ['{"x": 1e400}', /beyond a 64-bit float/],
    ]) {
      await editor.fill(text);
      await page.getByRole("button", { name: "Publish", exact: true }).click();
      await page.getByText(problem).waitFor();
      assert.equal(await editor.getAttribute("aria-invalid"), "true");
    }
    assert.equal(publishes(), before, "invalid JSON must not be sent");
    assert.equal((await httpCall(server, "GET", `/v1/stream/${subject}`)).json.last, 0);

    const text = '{"order": 17, "total": 18446744073709551617}';
    await editor.fill(text);
    await page.getByLabel("Idempotency key (optional)").fill("order-17");
    await editor.press("Control+Enter");
    await page.getByText("Stored as #1.").waitFor();
    await screenshot(page, "publish");
    const stored = await httpCall(server, "GET", `/v1/stream/${subject}/messages?from=1`);
    assert.ok(stored.text.includes(`"data":${text}`), stored.text);

    // The same idempotency key again stores nothing.
    await page.getByRole("button", { name: "Publish", exact: true }).click();
    await page.getByText("Already stored as #1").waitFor();
  });

  test("a consumer's lag is shown, its cursor is moved and it is deleted", { timeout: TEST_TIMEOUT_MS }, async () => {
    const subject = uniqueSubject("console-consumers");
    await httpCall(server, "POST", `/v1/stream/${subject}?batch=1`, { body: JSON.stringify(Array.from({ length: 10 }, (_, i) => ({ n: i + 1 }))) });
    // Two durable consumers: billing acked 4 and went away; audit is connected, acking nothing.
    const billingClient = await connect(server, subject, { label: "billing" });
    await billingClient.ok({ op: "sub", consumer: "billing", from: "first" });
    await billingClient.waitForMessages(10);
    await billingClient.ok({ op: "ack", seq: 4 });
    billingClient.close();
    await billingClient.waitClosed();
    const audit = await connect(server, subject, { label: "audit" });
    try {
      await audit.ok({ op: "sub", consumer: "audit", from: "first" });
      await audit.waitForMessages(10);

      const { page } = await openConsole(`#/subject/${subject}/consumers`);
      await signIn(page);
      const billing = page.locator('tr[data-consumer="billing"]');
      await billing.getByText("6 behind").waitFor();
      const auditRow = page.locator('tr[data-consumer="audit"]');
      await auditRow.getByText("10 behind").waitFor();
      await auditRow.locator('td[data-label="Connected"]', { hasText: "yes" }).waitFor();
      assert.equal(await auditRow.locator('td[data-label="Ack pending"]').textContent(), "10");
      await screenshot(page, "consumers");

      await billing.getByRole("button", { name: "Move the cursor of billing" }).click();
      const dialog = page.getByRole("dialog", { name: "Move the cursor of billing" });
      await dialog.getByRole("button", { name: /Skip to the end/ }).click();
      await dialog.getByRole("button", { name: "Move cursor" }).click();
      await dialog.waitFor({ state: "detached" });
      await billing.getByText("caught up").waitFor();
      const consumers = async () => (await httpCall(server, "GET", `/v1/stream/${subject}/consumers`)).json.consumers;
      assert.equal((await consumers()).find((c) => c.name === "billing").acked, 10);

      await page.getByRole("button", { name: "Delete audit" }).click();
      await page.getByRole("dialog", { name: "Delete audit?" }).getByRole("button", { name: "Delete consumer" }).click();
      await auditRow.waitFor({ state: "detached" });
      assert.deepEqual((await consumers()).map((c) => c.name), ["billing"]);
      // The connection subscribed as it is told.
      await audit.nextFrame((f) => f.op === "err" && f.code === "conflict", { since: 0, what: "the consumer-deleted error" });
    } finally {
      audit.close();
    }
  });

  test("a state edit that lost the compare-and-set race is shown, not written over", { timeout: TEST_TIMEOUT_MS }, async () => {
    const subject = uniqueSubject("console-state");
    const put = (body, version) => httpCall(server, "PUT", `/v1/stream/${subject}/state`, { body: JSON.stringify(body), headers: { "if-match": `"${version}"` } });
    assert.equal((await put({ owner: "alice", shards: 4 }, 0)).status, 200);
    const { page } = await openConsole(`#/subject/${subject}/state`);
    await signIn(page);
    await page.getByText("version 1", { exact: true }).waitFor();
    await page.getByRole("button", { name: "Edit" }).click();
    const editor = page.getByLabel("Editing version 1");
    await editor.fill('{"owner": "console", "shards": 8}');

    // Another client saves first.
    assert.equal((await put({ owner: "bob", shards: 6 }, 1)).status, 200);
    await page.getByRole("button", { name: "Save as version 2" }).click();
    const conflict = page.getByRole("alert").filter({ hasText: "Not saved: the document changed while you were editing" });
    await conflict.waitFor();
    assert.match(await conflict.textContent(), /You edited version 1; it is now version 2/);
    assert.match(await conflict.textContent(), /"owner": "bob"/);
    assert.equal(await editor.inputValue(), '{"owner": "console", "shards": 8}');
    assert.deepEqual((await httpCall(server, "GET", `/v1/stream/${subject}/state`)).json, { owner: "bob", shards: 6 });
    await screenshot(page, "state-conflict");

    // Building on the newer version is an explicit choice, and then it saves.
    await page.getByRole("button", { name: "Edit mine on top of version 2" }).click();
    await page.getByRole("button", { name: "Save as version 3" }).click();
    await page.getByText("Saved: the state is now version 3.").waitFor();
    await page.getByText('"console"').waitFor();
    assert.deepEqual((await httpCall(server, "GET", `/v1/stream/${subject}/state`)).json, { owner: "console", shards: 8 });
  });
});

describe("files", () => {
  test("a file is uploaded with progress, listed under its prefix, downloaded back and deleted", { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = `${uniqueSubject("console-files")}/`;
    const bytes = randomBytes(3 * 1024 * 1024);
    const sha256 = (data) => createHash("sha256").update(data).digest("hex");
    const { page } = await openConsole(`#/files?prefix=${encodeURIComponent(prefix)}`);
    await signIn(page);
    await page.getByText(`Nothing under “${prefix}”`).waitFor();
    // A file one level down: the listing shows its folder.
    await httpCall(server, "PUT", `/v1/files/${prefix}archive/2025.csv`, { body: "month,total\n1,17\n", headers: { "content-type": "text/csv" } });
    await page.getByRole("button", { name: "Go" }).click();
    await page.getByRole("link", { name: "archive/" }).waitFor();

    // A slow link (2 MiB/s up) so that the upload is seen in progress.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 2 * 1024 * 1024 });
    await page.locator("#upload-input").setInputFiles({ name: "report.bin", mimeType: "application/octet-stream", buffer: bytes });
    const progress = page.getByRole("progressbar", { name: `Uploading ${prefix}report.bin` });
    await until(async () => Number(await progress.getAttribute("value").catch(() => 0)) > 0, WAIT_MS, "upload progress");
    await screenshot(page, "files-upload");
    await page.getByText(`Uploaded ${prefix}report.bin (3 MiB).`).waitFor();
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

    const row = page.locator(`tr[data-key="${prefix}report.bin"]`);
    await row.waitFor();
    const stored = await fetch(`${server.url}/v1/files/${prefix}report.bin`, { headers: AUTH });
    assert.equal(sha256(Buffer.from(await stored.arrayBuffer())), sha256(bytes));
    await screenshot(page, "files");

    const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: "Download report.bin" }).click()]);
    assert.equal(download.suggestedFilename(), "report.bin");
    assert.equal(sha256(await readFile(await download.path())), sha256(bytes));

    await row.getByRole("button", { name: "Delete report.bin" }).click();
    await page.getByRole("dialog", { name: "Delete report.bin?" }).getByRole("button", { name: "Delete file" }).click();
    await row.waitFor({ state: "detached" });
    assert.equal((await fetch(`${server.url}/v1/files/${prefix}report.bin`, { headers: AUTH })).status, 404);
  });
});
