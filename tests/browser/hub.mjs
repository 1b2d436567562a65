// What the browser tests share: the real hub binary (HUB_BIN, passed in by
// tests/browser.rs) on a free port with a fresh SQLite file, users made
// with its CLI, and pages in headless Chromium that record every socket URL
// and dialog, check accessibility with axe-core and save a screenshot.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const HUB_BIN = process.env.HUB_BIN;
const CHROMIUM = process.env.HUB_TEST_CHROMIUM || "/usr/bin/chromium";
export const SHOTS = join(ROOT, "target", "browser-screenshots");
const KEY = "browser-test-signing-key";
export const INGEST_KEY = "browser-test-ingest-key";
/** Long enough for any state a page waits for, on a busy machine. */
export const WAIT = 30_000;
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

assert.ok(HUB_BIN, "HUB_BIN must name the hub binary (tests/browser.rs sets it)");
mkdirSync(SHOTS, { recursive: true });

const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * The real hub, as a process on a database of its own: its users made with
 * its CLI before it serves, then started, stopped (SIGTERM) and started again
 * on its port.
 */
export class Hub {
  constructor(env = {}) {
    this.dir = mkdtempSync(join(tmpdir(), "hub-browser-"));
    this.env = {
      PATH: process.env.PATH,
      DATABASE_URL: `sqlite://${join(this.dir, "hub.sqlite3")}`,
      JWT_SIGNING_KEY: KEY,
      HUB_INGEST_KEY: INGEST_KEY,
      HUB_PASSWORD_ITERATIONS: "1000",
      HUB_DNS_WRITES_PER_SEC: "1000",
      // A restart closes the pages' sockets within a second, not over the
      // 10 s of production.
      HUB_DRAIN_SECS: "1",
      HUB_LOG_FORMAT: "json",
      RUST_LOG: "info",
      ...env,
    };
    this.port = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts `hub serve` (on the port it had, once it has one). */
  serve() {
    // A process group of its own: the hub is signalled only by this
    // harness (SIGTERM, to restart it), never by a signal meant for the
    // test runner's group; the runner's exit still takes it down.
    this.child = spawn(HUB_BIN, ["serve"], {
      env: { ...this.env, HUB_BIND: `127.0.0.1:${this.port}` },
      stdio: ["ignore", "ignore", "pipe"],
      detached: true,
    });
    running.add(this.child);
    this.child.once("exit", () => running.delete(this.child));
    this.exited = new Promise((resolve) => this.child.once("exit", resolve));
    const lines = createInterface({ input: this.child.stderr });
    const log = [];
    this.stopping = false;
    // A hub that dies under a test is told with its last words, or the
    // test would only see refused connections.
    this.child.once("exit", (code, signal) => {
      if (!this.stopping) console.error(`the hub exited (${code ?? signal}) unasked; its log ends:\n${log.slice(-20).join("\n")}`);
    });
    return new Promise((resolve, reject) => {
      this.child.once("exit", (code, signal) => reject(new Error(`hub exited (${code ?? signal}) before serving:\n${log.join("\n")}`)));
      lines.on("line", (line) => {
        log.push(line);
        let entry;
        try {
          entry = JSON.parse(line);
        } catch {
          return;
        }
        if (entry.fields?.message === "serving") {
          this.port = entry.fields.port;
          resolve();
        }
      });
    });
  }

  /** SIGTERM: the hub closes its sockets with 1012 and exits. */
  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    this.stopping = true;
    this.child.kill("SIGTERM");
    await this.exited;
  }

  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs the hub's CLI on this hub's database; returns what it printed. */
  cli(args, input = "") {
    const out = spawnSync(HUB_BIN, args, { env: { ...this.env, RUST_LOG: "warn" }, input, encoding: "utf8" });
    assert.equal(out.status, 0, `hub ${args.join(" ")}: ${out.stderr}`);
    return out.stdout;
  }

  /** Creates a user with the hub's CLI; returns its id. */
  createUser(username, password, { staff = false } = {}) {
    const args = ["user", "create", "--username", username, "--password-stdin"];
    if (staff) args.push("--staff");
    return Number(/\(id (\d+)\)/.exec(this.cli(args, `${password}\n`))[1]);
  }

  /** Posts metric events as the backend does, with the ingest key. */
  async ingest(events) {
    const res = await fetch(`${this.url}/api/analytics/events`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-ingest-key": INGEST_KEY },
      body: JSON.stringify(events),
    });
    assert.equal(res.status, 200, await res.text());
  }
}

/** Headless Chromium, or a clear error naming what is missing. */
export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}

/**
 * A hub with these users (`[name, password, options]`) and a browser for
 * the tests of one `describe`: started before them, closed after. Its
 * `hub` and `browser` are set once started, and `ids`, each user's id by name.
 */
export function serveSuite(users = [], env = {}) {
  const suite = {};
  before(async () => {
    suite.hub = new Hub(env);
    suite.ids = {};
    for (const [name, password, options] of users) suite.ids[name] = suite.hub.createUser(name, password, options);
    await suite.hub.serve();
    suite.browser = await launch();
  });
  after(async () => {
    await suite.browser?.close();
    await suite.hub?.close();
  });
  return suite;
}

/** A page of the hub in a browser context of its own (`options` for it). */
export async function openAlone(browser, hub, path, options = {}) {
  return open(await browser.newContext(options), hub, path);
}

/** Checks every page the contexts opened (`checkPage`), then closes them. */
export async function finish(...contexts) {
  for (const context of contexts) {
    for (const page of context.pages()) checkPage(page);
    await context.close();
  }
}

/**
 * A page of the hub that records what the tests check on every page: the
 * URL of each socket it opens, each dialog (none may open), each script
 * error and each Content-Security-Policy violation.
 */
export async function open(context, hub, path) {
  const page = await context.newPage();
  page.sockets = [];
  page.dialogs = [];
  page.problems = [];
  page.on("websocket", (ws) => page.sockets.push(ws));
  page.on("dialog", (dialog) => {
    page.dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  page.on("pageerror", (err) => page.problems.push(`script error: ${err.message}`));
  page.on("console", (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text())) page.problems.push(msg.text());
  });
  await page.goto(`${hub.url}${path}`);
  return page;
}

/**
 * Signs in with the form in the shared header, unfolding it first where a
 * phone's width folds it behind its button.
 */
export async function signIn(page, username, password) {
  if (await page.isVisible("#signin-toggle") && !(await page.isVisible("#signin-username"))) {
    await page.click("#signin-toggle");
  }
  await page.fill("#signin-username", username);
  await page.fill("#signin-password", password);
  await page.click("#signin button[type=submit]");
  await page.locator("#whoami").filter({ hasText: username }).waitFor({ timeout: WAIT });
}

/** Waits for the header to say the page's socket is connected. */
export async function connected(page) {
  await page.locator("#conn-state[data-state=open]").waitFor({ timeout: WAIT });
}

/**
 * What every test asks of every page it opened: no socket URL holds a
 * token, no dialog opened, no script error or CSP violation.
 */
export function checkPage(page) {
  for (const ws of page.sockets) {
    const url = new URL(ws.url());
    assert.equal(url.searchParams.get("token"), null, `a token in ${ws.url()}`);
    assert.doesNotMatch(ws.url(), /eyJ[\w-]+\.[\w-]+\./, `a JWT in ${ws.url()}`);
  }
  assert.deepEqual(page.dialogs, [], "a dialog opened");
  assert.deepEqual(page.problems, [], "the page reported problems");
}

/** axe-core in the page: no serious or critical violation. */
export async function accessible(page, what) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const results = await window.axe.run(document, { resultTypes: ["violations"] });
    return results.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
  assert.deepEqual(violations, [], `accessibility of ${what}`);
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** The page's <main> fits a phone's width: no sideways scrolling. */
export async function fitsWidth(page) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${page.url()} is ${overflow}px wider than the window`);
}
