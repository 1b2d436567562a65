// Who the page says you are, and what it says when the hub will not let
// you in: a guest's own name and messages, kept across a restart and a
// reload of the tab; a staff room refused in words, without retrying; one
// sign-in shared by the tabs of a browser; a compact header at a phone's
// width; and a header line for each of a page's connections.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  WAIT, accessible, connected, finish, open, openAlone, screenshot, serveSuite, signIn,
} from "./hub.mjs";

const PASSWORD = "correct horse battery";

/** Says something in the page's room and waits for it to come back. */
async function say(page, text) {
  await page.fill("#message", text);
  await page.press("#message", "Enter");
  await page.locator("#log .message").filter({ hasText: text }).waitFor({ timeout: WAIT });
}

/** The message of the log that holds `text`. */
const said = (page, text) => page.locator("#log .message").filter({ hasText: text });

describe("who the chat page says you are", () => {
  const suite = serveSuite([["alice", PASSWORD], ["sam", PASSWORD, { staff: true }]]);

  test("a guest sees its name and its own messages, and keeps both across a restart and a reload", async () => {
    const { hub, browser } = suite;
    const alice = await openAlone(browser, hub, "/chat.html#tea");
    await signIn(alice, "alice", PASSWORD);
    await connected(alice);
    await say(alice, "hello from alice");

    const page = await openAlone(browser, hub, "/chat.html#tea", { viewport: { width: 1280, height: 800 } });
    await connected(page);
    const name = await page.locator("#me").textContent();
    assert.match(name, /^guest-[0-9a-f]{6}$/);
    await page.locator("#identity").filter({ hasText: `You are ${name}, a guest` }).waitFor();
    await page.locator("#members li.me").filter({ hasText: name }).waitFor({ timeout: WAIT });
    await say(page, "my first words");
    const mine = said(page, "my first words");
    assert.match(await mine.getAttribute("class"), /\bmine\b/);
    assert.equal(await mine.locator(".author").textContent(), name);
    assert.equal(await mine.locator(".you").textContent(), " (you)");
    assert.doesNotMatch(await said(page, "hello from alice").getAttribute("class"), /\bmine\b/);
    // Others see the guest's message as the guest's, not as theirs.
    const theirs = said(alice, "my first words");
    await theirs.waitFor({ timeout: WAIT });
    assert.equal(await theirs.locator(".you").count(), 0);
    assert.equal(await alice.locator(".mine").filter({ hasText: "my first words" }).count(), 0);

    // The hub restarts: the page reconnects under the same name, and what
    // it said before is still its own.
    await hub.stop();
    await page.locator("#conn-state[data-state=waiting]").waitFor({ timeout: WAIT });
    await hub.serve();
    await connected(page);
    assert.ok(page.sockets.length >= 2, "a new socket was opened");
    assert.equal(await page.locator("#me").textContent(), name);
    await say(page, "after the restart");
    assert.match(await said(page, "after the restart").getAttribute("class"), /\bmine\b/);
    assert.match(await said(page, "my first words").getAttribute("class"), /\bmine\b/);
    assert.equal(await said(page, "my first words").count(), 1, "shown once");

    // A reload of the tab: the same name, and the history marks both.
    await page.reload();
    await connected(page);
    await page.locator("#me").filter({ hasText: name }).waitFor({ timeout: WAIT });
    for (const text of ["my first words", "after the restart"]) {
      await said(page, text).locator(".you").waitFor({ timeout: WAIT });
    }
    assert.equal(await page.locator("#log .mine").count(), 2);
    await connected(alice);
    await accessible(page, "the chat page of a guest");
    await screenshot(page, "chat-guest");
    await finish(alice.context(), page.context());
  });

  test("a guest who types the staff room is told it is for staff only, and the page stops trying", async () => {
    const page = await openAlone(suite.browser, suite.hub, "/chat.html");
    await connected(page);
    await page.fill("#room", "management");
    await page.click("#join button[type=submit]");
    await page.locator("#log .error").filter({ hasText: "The room management is for staff only" }).waitFor({ timeout: WAIT });
    const state = page.locator("#conn-state[data-state=stopped]");
    await state.filter({ hasText: "this room is for staff only" }).waitFor({ timeout: WAIT });
    assert.doesNotMatch(await state.textContent(), /reconnecting|1006/);
    // Several times the longest first delays: a page that retried would
    // have opened more sockets by now.
    const tried = () => page.sockets.filter((ws) => ws.url().includes("/ws/chat/management/")).length;
    assert.equal(tried(), 1);
    await page.waitForTimeout(5000);
    assert.equal(tried(), 1, "no further socket to the staff room");
    await accessible(page, "the chat page refused a staff room");
    await screenshot(page, "chat-staff-only");
    await finish(page.context());
  });

  test("a tab opened by address is signed in while another is, and signing out in one signs out both", async () => {
    const { hub, browser } = suite;
    const first = await openAlone(browser, hub, "/");
    const context = first.context();
    await signIn(first, "alice", PASSWORD);
    const second = await open(context, hub, "/chat.html#tea");
    await second.locator("#whoami").filter({ hasText: "alice" }).waitFor({ timeout: WAIT });
    await connected(second);
    await second.locator("#me").filter({ hasText: "alice" }).waitFor({ timeout: WAIT });
    // Shared in memory only: nothing in localStorage.
    for (const page of [first, second]) assert.equal(await page.evaluate(() => localStorage.length), 0);
    // Another browser profile is another origin's storage: not signed in.
    const stranger = await openAlone(browser, hub, "/");
    await stranger.locator("footer.site").waitFor();
    await stranger.waitForTimeout(1000);
    assert.equal(await stranger.locator("#whoami").count(), 0);

    await second.click("#signout");
    await first.locator("#signin").waitFor({ state: "attached", timeout: WAIT });
    assert.equal(await first.locator("#whoami").count(), 0);
    // Signed out, the chat goes on as a guest.
    await second.locator("#me").filter({ hasText: /^guest-/ }).waitFor({ timeout: WAIT });
    const third = await open(context, hub, "/");
    await third.locator("#signin").waitFor({ state: "attached" });
    await third.waitForTimeout(1000);
    assert.equal(await third.locator("#whoami").count(), 0, "nobody is signed in to hand over");
    await finish(context, stranger.context());
  });

  test("at a phone's width the header stays compact, and a signed-out page is not shown as a fault", async () => {
    const { hub, browser } = suite;
    const phone = { viewport: { width: 375, height: 740 } };
    const page = await openAlone(browser, hub, "/chat.html", phone);
    await connected(page);
    const height = () => page.locator("header.site").evaluate((h) => h.getBoundingClientRect().height);
    assert.ok((await height()) < 120, `the header is ${await height()} px high`);
    assert.equal(await page.isVisible("#signin-username"), false, "the form is folded");
    await accessible(page, "the chat page at 375 px");
    await screenshot(page, "chat-phone");
    await page.click("#signin-toggle");
    assert.equal(await page.getAttribute("#signin-toggle", "aria-expanded"), "true");
    assert.equal(await page.isVisible("#signin-username"), true);
    await accessible(page, "the chat page at 375 px with the sign-in form open");
    await signIn(page, "alice", PASSWORD);
    assert.ok((await height()) < 120, `signed in, the header is ${await height()} px high`);
    await accessible(page, "the chat page at 375 px, signed in");

    // Not signed in: a quiet line of its own, neither "disconnected" nor red.
    const dashboard = await openAlone(browser, hub, "/dashboard.html", phone);
    const line = dashboard.locator("#conn-state[data-state=signed-out] .conn-line");
    await line.waitFor({ timeout: WAIT });
    const text = await line.textContent();
    assert.match(text, /not signed in/);
    assert.doesNotMatch(text, /disconnected/);
    const look = await line.evaluate((node) => {
      const dot = getComputedStyle(node, "::before");
      const probe = document.createElement("span");
      probe.style.color = "var(--error)";
      document.body.append(probe);
      const error = getComputedStyle(probe).color;
      probe.remove();
      return { content: dot.content, color: dot.color, error };
    });
    assert.notEqual(look.color, look.error, "the error's colour");
    assert.equal(look.content, '"○"');
    await accessible(dashboard, "a signed-out dashboard at 375 px");
    await finish(page.context(), dashboard.context());
  });

  test("the header shows one line for each of the page's connections", async () => {
    const page = await openAlone(suite.browser, suite.hub, "/staff.html");
    await signIn(page, "sam", PASSWORD);
    await page.locator("#console").waitFor({ state: "visible", timeout: WAIT });
    const lines = page.locator("#conn-state .conn-line[data-state=open]");
    await page.waitForFunction(() => document.querySelectorAll("#conn-state .conn-line[data-state=open]").length === 2, null, { timeout: WAIT });
    assert.deepEqual(await lines.evaluateAll((ps) => ps.map((p) => p.dataset.name).sort()), ["analytics", "chat"]);
    await page.locator("#conn-state .conn-line").filter({ hasText: "Room management: connected" }).waitFor();
    await page.locator("#conn-state .conn-line").filter({ hasText: "Analytics: connected" }).waitFor();
    await connected(page);
    await accessible(page, "the staff console with two connections");
    await finish(page.context());
  });
});
