// A real headless Chromium for the page tests: Debian's chromium-headless-shell driven by the npm
// playwright-core (Playwright's own browser download cannot work on these machines; see
// docs/DEVELOPING.md). Screenshots go to miniflare-tests/.tmp/screenshots (not committed).

import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { ROOT } from "./server.mjs";

/** Debian's chromium-headless-shell, or another Chromium named by CHROMIUM_PATH. */
export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium-headless-shell";
export const SCREENSHOTS = join(ROOT, "miniflare-tests", ".tmp", "screenshots");

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium-headless-shell (scripts/test.sh does), or set CHROMIUM_PATH to a Chromium binary`);
  }
  // Root (as on CI machines and here) cannot use Chromium's sandbox.
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}

/** Saves what the page shows now as SCREENSHOTS/{name}.png (animations finished first). */
export async function screenshot(page, name, options = {}) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), animations: "disabled", ...options });
}
