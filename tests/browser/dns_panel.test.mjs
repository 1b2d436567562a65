// The DNS panel as a hosting customer and support staff use it, on a zone
// of 300 records: an import that previews and merges by default, deletes
// that ask and can be undone, cleared fields, search, filter and pages, a
// form per type, zone deletion and owners for staff, conflicts that keep
// what was typed, and history paged with old → new.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  Hub, WAIT, accessible, connected, finish, fitsWidth, launch, open, openAlone, screenshot, signIn,
} from "./hub.mjs";

const PASSWORD = "correct horse battery";
/** A zone file of the apex and h1 … h(n-1). */
const zoneFile = (n) => ["@ 300 IN A 192.0.2.250",
  ...Array.from({ length: n - 1 }, (_, i) => `h${i + 1} 300 IN A 192.0.2.${(i % 200) + 1}`)].join("\n");

async function newZone(page, name) {
  await page.fill("#new-zone-name", name);
  await page.click("#new-zone button[type=submit]");
  await page.waitForFunction((zone) => document.getElementById("zone").value === zone &&
    document.getElementById("zone-serial").textContent.startsWith("Serial"), name, { timeout: WAIT });
}

/** Previews an import in `mode` and applies it; returns the preview's summary. */
async function importText(page, text, mode) {
  await page.fill("#import-text", text);
  if (mode) await page.check(`#import input[name=mode][value=${mode}]`);
  await page.click("#import button[type=submit]");
  await page.locator("#import-preview").waitFor({ state: "visible", timeout: WAIT });
  const summary = await page.textContent("#import-summary");
  await page.click("#import-apply");
  await page.locator("#import-errors .ok").waitFor({ timeout: WAIT });
  return summary;
}

const count = (page) => page.textContent("#record-count");
const rowOf = (page, text) => page.locator("#records tbody tr[data-id]").filter({ hasText: text });

describe("the DNS panel", () => {
  let hub;
  let browser;

  before(async () => {
    hub = new Hub();
    hub.createUser("carol", PASSWORD);
    hub.createUser("dave", PASSWORD);
    hub.createUser("sam", PASSWORD, { staff: true });
    await hub.serve();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await hub?.close();
  });

  /** The panel in a browser context of its own, signed in as `username`. */
  async function panelFor(username, path = "/dns.html") {
    const page = await openAlone(browser, hub, path);
    await signIn(page, username, PASSWORD);
    await connected(page);
    return page;
  }

  test("an import previews, merges by default, replaces only when confirmed, and can be undone", async () => {
    const page = await panelFor("carol");
    await newZone(page, "big.example");

    // Replacing, chosen explicitly: the preview says what it adds.
    const first = await importText(page, zoneFile(300), "replace");
    assert.match(first, /add 300, change 0 and delete 0/);
    await page.locator("#record-count").filter({ hasText: "300 record(s)" }).waitFor({ timeout: WAIT });

    // One pasted line, with the page's default: a merge of one record.
    await page.fill("#import-text", "new IN A 192.0.2.200");
    await page.click("#import button[type=submit]");
    await page.locator("#import-summary").filter({ hasText: "+1 ~0 −0" }).waitFor({ timeout: WAIT });
    assert.equal(await page.textContent("#import-warning"), "");
    await page.locator("#import-changes li").filter({ hasText: "+ add new A 192.0.2.200" }).waitFor({ timeout: WAIT });
    await page.click("#import-apply");
    await page.locator("#record-count").filter({ hasText: "301 record(s)" }).waitFor({ timeout: WAIT });

    // Replace with that one line: the preview warns of 300 deletions and
    // the button says so; cancelling changes nothing.
    await page.fill("#import-text", "new IN A 192.0.2.200");
    await page.check("#import input[name=mode][value=replace]");
    await page.click("#import button[type=submit]");
    await page.locator("#import-warning").filter({ hasText: "It deletes 300 record(s)" }).waitFor({ timeout: WAIT });
    assert.equal(await page.textContent("#import-apply"), "Import and delete 300 record(s)");
    await accessible(page, "an import's preview");
    await screenshot(page, "dns-import-preview");
    await page.click("#import-cancel");
    assert.match(await count(page), /^301 record\(s\)/);

    // Applied, then undone: the 300 are back, as one change.
    await page.click("#import button[type=submit]");
    await page.click("#import-apply");
    await page.locator("#record-count").filter({ hasText: /^1 record\(s\)/ }).waitFor({ timeout: WAIT });
    await page.locator("#undo-bar button", { hasText: "Undo" }).click();
    await page.locator("#record-count").filter({ hasText: "301 record(s)" }).waitFor({ timeout: WAIT });
    await finish(page.context());
  });

  test("a zone of 300 records is searched, filtered, paged and sorted as DNS names", async () => {
    const page = await panelFor("dave");
    await newZone(page, "paged.example");
    await importText(page, `${zoneFile(300)}\nmail IN A 192.0.2.25\n@ IN MX 10 mail`, "merge");
    await page.locator("#record-count").filter({ hasText: "302 record(s), showing 1–50" }).waitFor({ timeout: WAIT });
    assert.equal(await page.locator("#records tbody tr[data-id]").count(), 50);
    const names = await page.locator("#records tbody td.name").allTextContents();
    assert.deepEqual(names.slice(0, 5), ["@", "@", "h1", "h2", "h3"], "the apex first, then h1, h2, h3 (not h1, h10, h100)");
    await page.click("#next-page");
    await page.locator("#page-of").filter({ hasText: "Page 2 of 7" }).waitFor({ timeout: WAIT });
    assert.equal(await page.locator("#records tbody td.name").first().textContent(), "h49");

    await page.fill("#search", "192.0.2.25");
    await page.locator("#record-count").filter({ hasText: /^\d+ of 302 record\(s\) match/ }).waitFor({ timeout: WAIT });
    assert.ok(await rowOf(page, "mail").count() >= 1);
    await page.fill("#search", "");
    await page.selectOption("#type-filter", "MX");
    await page.locator("#record-count").filter({ hasText: "1 of 302 record(s) match" }).waitFor({ timeout: WAIT });
    await page.selectOption("#type-filter", "");

    // Editing the first row opens the form in that row, and Save says so
    // and marks the row.
    await page.fill("#search", "h1");
    await rowOf(page, /^h1A/).getByRole("button", { name: "Edit h1 A" }).click();
    assert.equal(await page.locator("#records tr.edit-row #record").count(), 1, "the form opens beside the row");
    await page.fill("#f-comment", "web front");
    await page.click("#record-submit");
    await page.locator("#records tr.saved").filter({ hasText: "web front" }).waitFor({ timeout: WAIT });
    await page.locator("#live").filter({ hasText: "Saved h1 A." }).waitFor({ timeout: WAIT });

    // Emptying the comment clears it.
    await rowOf(page, "web front").getByRole("button", { name: "Edit h1 A" }).click();
    await page.fill("#f-comment", "");
    await page.click("#record-submit");
    await page.locator("#live").filter({ hasText: "Saved h1 A." }).waitFor({ timeout: WAIT });
    await page.locator("#records tr.saved td.comment:empty").waitFor({ timeout: WAIT });
    assert.equal(await rowOf(page, "web front").count(), 0);

    // Delete asks first, warns when something points at the name, and
    // can be undone.
    await page.fill("#search", "mail");
    await rowOf(page, /^mailA/).getByRole("button", { name: "Delete mail A" }).press("Enter");
    const confirm = page.locator("#records .confirm-row");
    await confirm.filter({ hasText: "@ MX points at mail.paged.example." }).waitFor({ timeout: WAIT });
    await accessible(page, "a delete asking to be confirmed");
    await confirm.getByRole("button", { name: "Delete mail A" }).click();
    await page.locator("#undo-bar").filter({ hasText: "Deleted mail A" }).waitFor({ timeout: WAIT });
    assert.equal(await rowOf(page, /^mailA/).count(), 0);
    await page.locator("#undo-bar button").click();
    await rowOf(page, /^mailA/).waitFor({ timeout: WAIT });
    await page.locator("#live").filter({ hasText: "Restored mail A." }).waitFor({ timeout: WAIT });

    // At a phone's width each record is a card with its actions in view.
    await page.setViewportSize({ width: 375, height: 800 });
    await page.fill("#search", "");
    await fitsWidth(page);
    const edit = page.getByRole("button", { name: "Edit h1 A" });
    const box = await edit.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 375, `Edit at ${JSON.stringify(box)}`);
    await accessible(page, "the DNS panel at 375 px");
    await screenshot(page, "dns-phone");
    await finish(page.context());
  });

  test("the form fits the type, a conflict keeps what was typed, and history pages with old and new", async () => {
    const first = await panelFor("carol");
    await newZone(first, "form.example");

    // An A record has no priority, weight or port; MX has a priority,
    // required before anything is sent; SRV has all three in columns.
    await first.selectOption("#f-type", "A");
    for (const f of ["priority", "weight", "port"]) assert.equal(await first.isVisible(`#f-${f}`), false, f);
    await first.selectOption("#f-type", "MX");
    assert.equal(await first.isVisible("#f-priority"), true);
    assert.equal(await first.isVisible("#f-weight"), false);
    await first.fill("#f-name", "@");
    await first.fill("#f-content", "mx.form.example.");
    await first.click("#record-submit");
    await first.locator("#f-priority-error").filter({ hasText: "Priority is required for MX records." }).waitFor({ timeout: WAIT });
    assert.equal(await first.locator("#records tbody tr[data-id]").count(), 0, "nothing was sent");
    await first.selectOption("#f-type", "SRV");
    await first.fill("#f-name", "_sip._tcp");
    await first.fill("#f-content", "sip.form.example.");
    await first.fill("#f-priority", "10");
    await first.fill("#f-weight", "5");
    await first.fill("#f-port", "5060");
    await first.click("#record-submit");
    const srv = rowOf(first, "_sip._tcp");
    await srv.waitFor({ timeout: WAIT });
    assert.deepEqual(await srv.locator("td").allTextContents().then((t) => t.slice(4, 7)), ["10", "5", "5060"]);

    // Two tabs edit one record: the loser keeps its typed TTL beside the
    // current record and applies it on top.
    await first.selectOption("#f-type", "A");
    await first.fill("#f-name", "www");
    await first.fill("#f-content", "192.0.2.1");
    await first.fill("#f-ttl", "300");
    await first.click("#record-submit");
    // Signed in by the first tab.
    const second = await open(first.context(), hub, "/dns.html#form.example");
    await second.locator("#whoami").filter({ hasText: "carol" }).waitFor({ timeout: WAIT });
    await connected(second);
    await rowOf(second, /^wwwA/).waitFor({ timeout: WAIT });
    await rowOf(second, /^wwwA/).getByRole("button", { name: "Edit www A" }).click();
    await rowOf(first, /^wwwA/).getByRole("button", { name: "Edit www A" }).click();
    await first.fill("#f-ttl", "600");
    await first.click("#record-submit");
    await rowOf(second, /^wwwA192\.0\.2\.1600/).waitFor({ timeout: WAIT });
    await second.fill("#f-ttl", "900");
    await second.click("#record-submit");
    await second.locator("#record-error li").filter({ hasText: "ttl: yours 900, now 600" }).waitFor({ timeout: WAIT });
    assert.equal(await second.inputValue("#f-ttl"), "900", "what was typed stays");
    await screenshot(second, "dns-conflict-kept");
    await second.getByRole("button", { name: "Apply my values on top" }).click();
    await rowOf(first, /^wwwA192\.0\.2\.1900/).waitFor({ timeout: WAIT });
    await first.locator("#live").filter({ hasText: /changed www A/ }).waitFor({ timeout: WAIT });

    // History: 60 more changes, paged 50 at a time, an update read as
    // old → new.
    await importText(first, Array.from({ length: 60 }, (_, i) => `n${i} IN A 192.0.2.${i + 1}`).join("\n"), "merge");
    await first.click("#load-history");
    await first.locator("#history tbody tr").nth(49).waitFor({ timeout: WAIT });
    assert.equal(await first.locator("#history tbody tr").count(), 50);
    await first.click("#more-history");
    await first.locator("#history-end").filter({ hasText: "whole history" }).waitFor({ timeout: WAIT });
    assert.ok(await first.locator("#history tbody tr").count() > 60);
    await first.locator("#history tbody td").filter({ hasText: "ttl: 600 → 900" }).waitFor({ timeout: WAIT });
    await first.locator("#history tbody td").filter({ hasText: "ttl: 300 → 600" }).waitFor({ timeout: WAIT });

    // The zone is deleted after a confirmation that names it.
    await first.click("#delete-zone");
    await first.locator("#delete-zone-question").filter({ hasText: "Delete the zone form.example and its 62 record(s)?" }).waitFor({ timeout: WAIT });
    await first.click("#delete-zone-yes");
    await first.locator("#live").filter({ hasText: "Deleted the zone form.example." }).waitFor({ timeout: WAIT });
    await second.locator("#zone option", { hasText: "form.example" }).waitFor({ state: "detached", timeout: WAIT });
    await finish(first.context());
  });

  test("staff see each zone's owner, filter by owner and create a zone for a customer", async () => {
    const page = await panelFor("sam");
    await page.locator("#dns-note").filter({ hasText: "Every customer's zones" }).waitFor({ timeout: WAIT });
    await page.locator("#zone option", { hasText: "big.example (carol)" }).waitFor({ state: "attached", timeout: WAIT });
    await page.locator("#zone option", { hasText: "paged.example (dave)" }).waitFor({ state: "attached", timeout: WAIT });
    const dave = await page.locator("#owner-filter option", { hasText: "dave" }).getAttribute("value");
    await page.selectOption("#owner-filter", dave);
    assert.deepEqual(await page.locator("#zone option").allTextContents(), ["paged.example (dave)"]);
    await page.locator("#zone-serial").filter({ hasText: "owned by dave" }).waitFor({ timeout: WAIT });

    await page.fill("#new-zone-name", "for-dave.example");
    await page.fill("#new-zone-owner", dave);
    await page.click("#new-zone button[type=submit]");
    // The serial line already names dave (paged.example is open): wait for
    // the new zone to be the one shown, then for its owner.
    await page.waitForFunction(() => document.querySelector("#zone").value === "for-dave.example", null, {
      timeout: WAIT,
    });
    await page.locator("#zone-serial").filter({ hasText: "owned by dave" }).waitFor({ timeout: WAIT });
    await accessible(page, "the DNS panel for staff");
    await screenshot(page, "dns-staff");

    // The customer sees it as theirs.
    const own = await panelFor("dave", "/dns.html#for-dave.example");
    await own.locator("#zone option", { hasText: "for-dave.example" }).waitFor({ state: "attached", timeout: WAIT });
    assert.equal(await own.isVisible("#owner-filter"), false);
    await finish(page.context(), own.context());
  });
});
