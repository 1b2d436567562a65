// The pages in headless Chromium against the real hub: each test drives a
// page as a person would, checks it with axe-core and saves a screenshot.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  Hub, WAIT, accessible, checkPage, connected, fitsWidth, launch, open, openAlone, screenshot, signIn,
} from "./hub.mjs";

const PASSWORD = "correct horse battery";
const HOSTILE = "<img src=x onerror=alert(1)>";

describe("pages", () => {
  let hub;
  let browser;
  const users = {};

  before(async () => {
    hub = new Hub({ HUB_MAX_CHAT_CHARS: "200" });
    users.alice = hub.createUser("alice", PASSWORD);
    users.bob = hub.createUser("bob", PASSWORD);
    users.sam = hub.createUser("sam", PASSWORD, { staff: true });
    users.hostile = hub.createUser(HOSTILE, PASSWORD);
    await hub.serve();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await hub?.close();
  });

  test("the home page signs in and out, and every page is accessible and fits a phone", async () => {
    const context = await browser.newContext();
    const page = await open(context, hub, "/");
    await page.fill("#signin-username", "alice");
    await page.fill("#signin-password", "wrong");
    await page.click("#signin button[type=submit]");
    await page.locator("#signin-error").filter({ hasText: "No active account" }).waitFor({ timeout: WAIT });
    // With users there, the first-run hint is not shown.
    assert.equal(await page.locator("#signin-error").filter({ hasText: "No account exists yet" }).count(), 0);
    await signIn(page, "alice", PASSWORD);
    await accessible(page, "the home page");
    await screenshot(page, "home");
    await page.click("#signout");
    await page.locator("#signin").waitFor();
    checkPage(page);

    const phone = await browser.newContext({ viewport: { width: 375, height: 740 }, colorScheme: "dark" });
    for (const path of ["/", "/dashboard.html", "/chat.html", "/dns.html", "/staff.html", "/about.html"]) {
      const small = await open(phone, hub, path);
      await small.locator("footer.site").waitFor();
      await fitsWidth(small);
      await accessible(small, `${path} in the dark theme at a phone's width`);
      checkPage(small);
    }
    await screenshot(await open(phone, hub, "/chat.html"), "chat-phone-dark");
    await phone.close();
    await context.close();
  });

  test("the dashboard's tiles and charts change as events are ingested", async () => {
    const context = await browser.newContext();
    const page = await open(context, hub, "/dashboard.html");
    await signIn(page, "alice", PASSWORD);
    await connected(page);
    await hub.ingest([{ user_id: users.alice, metric: "visits", value: 3, op: "add" }]);
    const visits = page.locator('[data-metric="visits"] .tile-value');
    await visits.filter({ hasText: /^3$/ }).waitFor({ timeout: WAIT });
    const points = async () => Number(await page.locator("#chart").getAttribute("data-points"));
    const before = await points();
    await hub.ingest([
      { user_id: users.alice, metric: "visits", value: 4, op: "add" },
      { user_id: users.alice, metric: "signups", value: 2, op: "set" },
    ]);
    await visits.filter({ hasText: /^7$/ }).waitFor({ timeout: WAIT });
    await page.locator('[data-metric="signups"] .tile-value').filter({ hasText: /^2$/ }).waitFor({ timeout: WAIT });
    assert.ok((await points()) > before, "the chart gained a point");
    for (const value of [9, 12, 16]) {
      await hub.ingest([{ user_id: users.alice, metric: "visits", value, op: "set" }]);
      await visits.filter({ hasText: new RegExp(`^${value}$`) }).waitFor({ timeout: WAIT });
    }
    // A chart per metric.
    await page.locator('#chart [data-metric="visits"] canvas').waitFor();
    await page.locator('#chart [data-metric="signups"] canvas').waitFor();
    await accessible(page, "the dashboard");
    await screenshot(page, "dashboard");
    checkPage(page);
    await context.close();
  });

  test("a guest and a signed-in user chat in a public room, with history after a reload", async () => {
    const aliceContext = await browser.newContext();
    const guestContext = await browser.newContext();
    const alice = await open(aliceContext, hub, "/chat.html#tea");
    await signIn(alice, "alice", PASSWORD);
    const guest = await open(guestContext, hub, "/chat.html#tea");
    await connected(alice);
    await connected(guest);
    await alice.locator("#members li").filter({ hasText: /^guest-/ }).waitFor({ timeout: WAIT });
    await guest.locator("#members li").filter({ hasText: /^alice$/ }).waitFor({ timeout: WAIT });

    await alice.fill("#message", "hello from alice");
    await alice.press("#message", "Enter");
    await guest.locator("#log .text").filter({ hasText: "hello from alice" }).waitFor({ timeout: WAIT });
    await guest.fill("#message", "hello from a guest");
    await guest.click("#say button[type=submit]");
    await alice.locator("#log .text").filter({ hasText: "hello from a guest" }).waitFor({ timeout: WAIT });

    // Over HUB_MAX_CHAT_CHARS: the hub's refusal shows at the message box.
    await guest.fill("#message", "x".repeat(201));
    await guest.click("#say button[type=submit]");
    await guest.locator("#say-error").filter({ hasText: "too long" }).waitFor({ timeout: WAIT });
    assert.equal(await guest.getAttribute("#message", "aria-invalid"), "true");

    await guest.reload();
    await connected(guest);
    for (const text of ["hello from alice", "hello from a guest"]) {
      await guest.locator("#log .text").filter({ hasText: text }).waitFor({ timeout: WAIT });
    }
    // The reload was a leave and a new guest's arrival, both in presence
    // diffs: Alice lists one guest, the new one.
    await alice.waitForFunction(
      () => [...document.querySelectorAll("#members li")].filter((li) => li.textContent.startsWith("guest-")).length === 1,
      null,
      { timeout: WAIT },
    );
    assert.equal(await guest.inputValue("#room"), "tea");
    await accessible(alice, "the chat page");
    await screenshot(alice, "chat");
    checkPage(alice);
    checkPage(guest);
    await aliceContext.close();
    await guestContext.close();
  });

  test("the staff console refuses a user who is not staff and works for staff", async () => {
    const context = await browser.newContext();
    const page = await open(context, hub, "/staff.html");
    await signIn(page, "bob", PASSWORD);
    await page.locator("#staff-note").filter({ hasText: "not staff" }).waitFor({ timeout: WAIT });
    assert.equal(await page.isVisible("#console"), false);
    await accessible(page, "the staff console, refused");
    await screenshot(page, "staff-refused");
    checkPage(page);
    await context.close();

    await hub.ingest([{ user_id: users.bob, metric: "orders", value: 5, op: "add" }]);
    const staffContext = await browser.newContext();
    const staff = await open(staffContext, hub, "/staff.html");
    await signIn(staff, "sam", PASSWORD);
    await staff.locator("#console").waitFor({ state: "visible", timeout: WAIT });
    await connected(staff);
    await staff.locator('[data-figure="chat rooms"] .tile-value').waitFor({ timeout: WAIT });
    await staff.locator('#global [data-metric="orders"]').waitFor({ timeout: WAIT });
    await staff.locator("#members li").filter({ hasText: /^sam$/ }).waitFor({ timeout: WAIT });
    await staff.fill("#message", "staff only here");
    await staff.press("#message", "Enter");
    await staff.locator("#log .text").filter({ hasText: "staff only here" }).waitFor({ timeout: WAIT });
    await accessible(staff, "the staff console");
    await screenshot(staff, "staff");
    checkPage(staff);
    await staffContext.close();
  });

  test("a DNS record made in one tab shows in another, and a refusal shows at its field", async () => {
    const context = await browser.newContext();
    const first = await open(context, hub, "/dns.html");
    await signIn(first, "alice", PASSWORD);
    await connected(first);
    await first.fill("#new-zone-name", "example.com");
    await first.click("#new-zone button[type=submit]");
    await first.locator("#zone-serial").filter({ hasText: "Serial" }).waitFor({ timeout: WAIT });

    // A second tab is signed in by the first.
    const second = await open(context, hub, "/dns.html#example.com");
    await second.locator("#whoami").filter({ hasText: "alice" }).waitFor({ timeout: WAIT });
    await connected(second);
    await second.locator("#zone-serial").filter({ hasText: "Serial" }).waitFor({ timeout: WAIT });

    await first.fill("#f-name", "www");
    await first.selectOption("#f-type", "A");
    await first.fill("#f-content", "192.0.2.1");
    await first.fill("#f-ttl", "300");
    await first.click("#record-submit");
    await first.locator("#records tbody tr").filter({ hasText: "192.0.2.1" }).waitFor({ timeout: WAIT });
    const seen = second.locator("#records tbody tr.changed").filter({ hasText: "192.0.2.1" });
    await seen.waitFor({ timeout: WAIT });

    await first.fill("#f-name", "foo-");
    await first.fill("#f-content", "192.0.2.2");
    await first.click("#record-submit");
    await first.locator("#f-name-error").filter({ hasText: "hyphen" }).waitFor({ timeout: WAIT });
    assert.equal(await first.getAttribute("#f-name", "aria-invalid"), "true");
    await accessible(first, "the DNS panel showing a refusal");
    await screenshot(first, "dns");

    // An edit from a stale copy is a conflict that offers the current record.
    await second.locator("#records tbody tr").filter({ hasText: "192.0.2.1" }).getByRole("button", { name: /^Edit/ }).click();
    await first.locator("#records tbody tr").filter({ hasText: "192.0.2.1" }).getByRole("button", { name: /^Edit/ }).click();
    await first.fill("#f-ttl", "600");
    await first.click("#record-submit");
    await second.locator("#records tbody tr").filter({ hasText: "600" }).waitFor({ timeout: WAIT });
    await second.fill("#f-ttl", "900");
    await second.click("#record-submit");
    await second.getByRole("button", { name: "Edit the current record" }).click();
    assert.equal(await second.inputValue("#f-ttl"), "600");

    // The zone file downloads; an import with a bad line names that line
    // and changes nothing.
    const [download] = await Promise.all([first.waitForEvent("download"), first.click("#export")]);
    assert.equal(download.suggestedFilename(), "example.com.zone");
    const exported = readFileSync(await download.path(), "utf8");
    assert.match(exported, /^www\s+600\s+IN\s+A\s+192\.0\.2\.1$/m);
    await first.fill("#import-text", `${exported}\nfoo- 300 IN A 192.0.2.9\n`);
    await first.click("#import button[type=submit]");
    await first.locator("#import-errors li").filter({ hasText: /^line \d+: name: / }).waitFor({ timeout: WAIT });
    assert.equal(await first.locator("#records tbody tr").count(), 1);

    await first.click("#load-history");
    await first.locator("#history tbody tr").first().waitFor({ timeout: WAIT });
    await accessible(first, "the DNS panel with its history");
    await screenshot(second, "dns-conflict");
    checkPage(first);
    checkPage(second);
    await context.close();
  });

  test("hostile text from users stays text: a chat message, a user name and a TXT record", async () => {
    const context = await browser.newContext();
    const page = await open(context, hub, "/chat.html#hostile");
    await signIn(page, HOSTILE, PASSWORD);
    await connected(page);
    await page.fill("#message", HOSTILE);
    await page.press("#message", "Enter");
    await page.locator("#log .text").filter({ hasText: HOSTILE }).waitFor({ timeout: WAIT });
    await page.locator("#log .author").filter({ hasText: HOSTILE }).first().waitFor();
    await page.locator("#members li").filter({ hasText: HOSTILE }).waitFor();
    assert.equal(await page.locator("#whoami").textContent(), HOSTILE);

    // Bob in a browser of his own: this one's tabs share the hostile sign-in.
    const bobContext = await browser.newContext();
    const dns = await open(bobContext, hub, "/dns.html");
    await signIn(dns, "bob", PASSWORD);
    await connected(dns);
    await dns.fill("#new-zone-name", "hostile.test");
    await dns.click("#new-zone button[type=submit]");
    await dns.locator("#zone-serial").filter({ hasText: "Serial" }).waitFor({ timeout: WAIT });
    await dns.fill("#f-name", "@");
    await dns.selectOption("#f-type", "TXT");
    await dns.fill("#f-content", HOSTILE);
    await dns.fill("#f-comment", HOSTILE);
    await dns.click("#record-submit");
    await dns.locator("#records td.content").filter({ hasText: HOSTILE }).waitFor({ timeout: WAIT });
    await dns.click("#load-history");
    await dns.locator("#history tbody td").filter({ hasText: HOSTILE }).waitFor({ timeout: WAIT });

    await screenshot(page, "hostile-chat");
    await screenshot(dns, "hostile-dns");
    for (const p of [page, dns]) {
      assert.equal(await p.locator('img[src="x"]').count(), 0, "the text became markup");
      checkPage(p);
    }
    await bobContext.close();
    await context.close();
  });

  test("the About page shows the award badge, and no page's footer does", async () => {
    const context = await browser.newContext();
    const page = await open(context, hub, "/about.html");
    const link = page.locator(".awards a.badge");
    assert.equal(await link.getAttribute("href"), "https://hostadvice.com/");
    assert.equal(await link.getAttribute("target"), "_blank");
    assert.equal(await link.getAttribute("rel"), "noopener noreferrer");
    const badge = link.locator("img");
    assert.match(await badge.getAttribute("alt"), /Top 25 Reseller Hosting 2026/);
    assert.ok(await badge.evaluate((img) => img.complete && img.naturalWidth > 0), "the badge image loads");
    await page.locator(".milestones li").filter({ hasText: "2026: Awarded Top 25 Reseller Hosting by HostAdvice" }).waitFor();
    await accessible(page, "the About page");
    await screenshot(page, "about");
    checkPage(page);

    for (const path of ["/", "/dashboard.html", "/chat.html", "/dns.html", "/staff.html", "/about.html"]) {
      const other = await open(context, hub, path);
      const footer = other.locator("footer.site");
      await footer.waitFor();
      assert.equal(await footer.locator("img, svg, [class*=badge]").count(), 0, `a badge in ${path}'s footer`);
      assert.doesNotMatch(await footer.textContent(), /HostAdvice/, `${path}'s footer`);
      checkPage(other);
    }
    await context.close();
  });
});

describe("a hub with no user yet", () => {
  let hub;
  let browser;

  before(async () => {
    hub = new Hub();
    await hub.serve();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await hub?.close();
  });

  test("signing in says that no account exists yet and how an operator makes one", async () => {
    const context = await browser.newContext();
    const page = await open(context, hub, "/");
    await page.fill("#signin-username", "alice");
    await page.fill("#signin-password", "anything");
    await page.click("#signin button[type=submit]");
    await page.locator("#signin-error")
      .filter({ hasText: "No account exists yet" })
      .filter({ hasText: "hub user create --username NAME --password-stdin" })
      .waitFor({ timeout: WAIT });
    await accessible(page, "the home page of a first run");
    await screenshot(page, "home-first-run");
    checkPage(page);
    await context.close();
  });
});

describe("a hub with short-lived access tokens", () => {
  let hub;
  let browser;
  let alice;

  before(async () => {
    // Six seconds: the test sees several expiries in well under a minute.
    hub = new Hub({ JWT_ACCESS_TOKEN_LIFETIME: "0.1", HUB_TOKEN_EXPIRY: "close" });
    alice = hub.createUser("alice", PASSWORD);
    await hub.serve();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await hub?.close();
  });

  test("the page refreshes its token and keeps one socket across several expiries", async () => {
    const context = await browser.newContext();
    const page = await open(context, hub, "/dashboard.html");
    const refreshed = [];
    page.on("websocket", (ws) => ws.on("framereceived", ({ payload }) => {
      if (String(payload).includes('"auth.refreshed"')) refreshed.push(payload);
    }));
    await signIn(page, "alice", PASSWORD);
    await connected(page);
    // Four refreshes answered on the socket span more than three lifetimes.
    const deadline = Date.now() + 4 * WAIT;
    while (refreshed.length < 4) {
      assert.ok(Date.now() < deadline, `only ${refreshed.length} refreshes answered`);
      await page.waitForTimeout(500);
    }
    assert.equal(page.sockets.length, 1, "the socket was never replaced");
    assert.equal(page.sockets[0].isClosed(), false);
    await hub.ingest([{ user_id: alice, metric: "visits", value: 1, op: "add" }]);
    await page.locator('[data-metric="visits"] .tile-value').filter({ hasText: /^1$/ }).waitFor({ timeout: WAIT });
    await screenshot(page, "dashboard-after-refreshes");
    checkPage(page);
    await context.close();
  });
});

describe("a hub that rechecks its users every second", () => {
  let hub;
  let browser;

  before(async () => {
    hub = new Hub({ HUB_USER_RECHECK_SECS: "1" });
    hub.createUser("carol", PASSWORD);
    await hub.serve();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await hub?.close();
  });

  test("a page closed with 4003 says why and does not reconnect", async () => {
    const context = await browser.newContext();
    const page = await open(context, hub, "/dashboard.html");
    await signIn(page, "carol", PASSWORD);
    await connected(page);
    hub.cli(["user", "set-active", "carol", "false"]);
    await page.locator("#conn-state[data-state=stopped]").filter({ hasText: "deactivated" }).waitFor({ timeout: WAIT });
    // Several times the first reconnect delay (0.25 to 0.75 s): a page that
    // wrongly reconnected would have opened another socket by then.
    const sockets = page.sockets.length;
    await page.waitForTimeout(3000);
    assert.equal(page.sockets.length, sockets, "no socket was opened after 4003");
    await screenshot(page, "dashboard-deactivated");
    checkPage(page);
    await context.close();
  });
});

describe("a hub that restarts", () => {
  let hub;
  let browser;

  before(async () => {
    hub = new Hub();
    await hub.serve();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await hub?.close();
  });

  test("the page reconnects by itself and misses nothing", async () => {
    const context = await browser.newContext();
    const page = await open(context, hub, "/chat.html#restart");
    await connected(page);
    await page.fill("#message", "before the restart");
    await page.press("#message", "Enter");
    await page.locator("#log .text").filter({ hasText: "before the restart" }).waitFor({ timeout: WAIT });

    await hub.stop();
    await page.locator("#conn-state[data-state=waiting]").waitFor({ timeout: WAIT });
    await hub.serve();
    await connected(page);
    assert.ok(page.sockets.length >= 2, "a new socket was opened");
    await page.fill("#message", "after the restart");
    await page.press("#message", "Enter");
    await page.locator("#log .text").filter({ hasText: "after the restart" }).waitFor({ timeout: WAIT });
    // Reconnected with ?since=: the earlier message is shown once, not twice.
    assert.equal(await page.locator("#log .text").filter({ hasText: "before the restart" }).count(), 1);
    assert.match(page.sockets.at(-1).url(), /since=\d+/);
    await screenshot(page, "chat-after-restart");
    checkPage(page);
    await context.close();
  });
});

describe("a hub at one of its caps", () => {
  // Each cap at one socket: the first page takes the place, the second is
  // refused at the handshake, says why, and gets in once the first leaves.
  for (const [cap, env, says] of [
    ["the node's socket cap (503 overloaded)", { HUB_MAX_SOCKETS: "1" }, /the hub is busy/],
    ["the guest cap of an address (429 too_many_connections)", { HUB_MAX_GUEST_SOCKETS_PER_ADDRESS: "1" }, /too many connections/],
  ]) {
    test(`at ${cap}, a page says so, waits and connects once a place is free`, async () => {
      const hub = new Hub(env);
      await hub.serve();
      const browser = await launch();
      try {
        const first = await openAlone(browser, hub, "/chat.html#full");
        await connected(first);
        const second = await openAlone(browser, hub, "/chat.html#full");
        await second.locator(".conn-line[data-state=waiting]").filter({ hasText: says }).waitFor({ timeout: WAIT });
        await screenshot(second, `chat-refused-${env.HUB_MAX_SOCKETS ? "overloaded" : "too-many"}`);
        await first.context().close();
        // The hub asks for 5 to 14 s at a full cap; the page waits that out.
        await connected(second);
        checkPage(first);
        checkPage(second);
      } finally {
        await browser.close();
        await hub.close();
      }
    });
  }
});

describe("a page whose clock runs behind the hub's", () => {
  let hub;
  let browser;

  before(async () => {
    // Six-second tokens, and the default HUB_TOKEN_EXPIRY: an open socket
    // outlives its token, so only a reconnect meets the expired one.
    hub = new Hub({ JWT_ACCESS_TOKEN_LIFETIME: "0.1" });
    hub.createUser("alice", PASSWORD);
    await hub.serve();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await hub?.close();
  });

  test("a chat that reconnects with a token the hub takes as expired comes back signed in, not a guest", async () => {
    const context = await browser.newContext();
    // Ten minutes behind: the page believes its six-second token has ten
    // minutes left, so it never renews it in time on its own.
    await context.clock.install({ time: Date.now() - 600_000 });
    const page = await open(context, hub, "/");
    await signIn(page, "alice", PASSWORD);
    await page.goto(`${hub.url}/chat.html#skew`);
    await connected(page);
    const seated = [];
    page.on("websocket", (ws) => ws.on("framereceived", ({ payload }) => {
      if (String(payload).includes('"auth.guest"')) seated.push(payload);
    }));
    await page.waitForTimeout(7000);
    await hub.stop();
    await page.locator("#conn-state[data-state=waiting]").waitFor({ timeout: WAIT });
    await hub.serve();
    // The reconnect with the expired token is seated as a guest and told
    // why; the page renews its token and reconnects as alice.
    const deadline = Date.now() + WAIT;
    while (seated.length === 0) {
      assert.ok(Date.now() < deadline, "the hub never seated the page as a guest");
      await page.waitForTimeout(200);
    }
    assert.match(seated[0], /token_expired/);
    await connected(page);
    await page.fill("#message", "signed in again");
    await page.press("#message", "Enter");
    const mine = page.locator("#log .message").filter({ hasText: "signed in again" });
    await mine.waitFor({ timeout: WAIT });
    assert.equal(await mine.locator(".author").textContent(), "alice");
    await screenshot(page, "chat-after-a-guest-seat");
    checkPage(page);
    await context.close();
  });
});
