// The DNS panel: the user's zones and their records, changed here or seen
// changing live from elsewhere (another tab, another person).

import { Connection, session } from "./conn.js";
import { el, mountShell, showState } from "./shell.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["name", "type", "content", "ttl", "priority", "weight", "port", "comment"];
const NUMBERS = new Set(["ttl", "priority", "weight", "port"]);

await mountShell();
const conn = new Connection("/ws/dns/");
showState(conn, "DNS");

const pending = new Map();
// Changes this page made (`id:version`), so their pushes are not shown as
// someone else's.
const own = new Set();
let zones = [];
let zone = null;
let serial = null;
let records = new Map();
let editing = null;

/** A request answered by `dns.result`, or rejected with its error frame. */
function request(frame) {
  const ref = conn.nextRef("d");
  return new Promise((resolve, reject) => {
    if (!conn.send({ ...frame, ref })) {
      reject({ code: "offline", detail: "Not connected to the hub: nothing was changed. Try again once connected." });
      return;
    }
    pending.set(ref, { resolve, reject });
  });
}

function remember(record) {
  own.add(`${record.id}:${record.version}`);
}

function recordSummary(r) {
  if (!r) return "";
  const extra = [r.priority, r.weight, r.port].filter((v) => v !== null && v !== undefined);
  return `${r.name} ${r.type} ${extra.join(" ")} ${r.content}`.replace(/\s+/g, " ");
}

// ---- Zones ----

/** Lists the zones; opens another one if the open one is gone. */
function renderZones() {
  const select = $("zone");
  select.replaceChildren(...zones.map((z) => el("option", { value: z.name, text: z.name })));
  if (zone && zones.some((z) => z.name === zone)) select.value = zone;
  else openZone(zones[0]?.name ?? null);
}

async function loadZones() {
  try {
    ({ zones } = await request({ type: "dns.zones" }));
    const wanted = decodeURIComponent(location.hash.slice(1));
    const open = [zone, wanted].find((name) => zones.some((z) => z.name === name));
    zone = null;
    if (open) zone = open;
    renderZones();
    if (open) await openZone(open);
  } catch (err) {
    $("live").textContent = err.detail;
  }
}

async function openZone(name) {
  zone = name;
  records = new Map();
  renderRecords();
  $("history").tBodies[0].replaceChildren();
  if (!name) {
    $("zone-serial").textContent = session.signedIn ? "You have no zones yet: create one." : "";
    return;
  }
  history.replaceState(null, "", `#${name}`);
  $("zone").value = name;
  try {
    const answer = await request({ type: "dns.list", zone: name });
    if (zone !== name) return;
    serial = answer.zone.serial;
    records = new Map(answer.records.map((r) => [r.id, r]));
    renderRecords();
    showSerial();
  } catch (err) {
    $("live").textContent = err.detail;
  }
}

function showSerial() {
  $("zone-serial").textContent = `Serial ${serial}`;
}

// ---- Records ----

function renderRecords(highlight = new Set()) {
  const rows = [...records.values()].sort((a, b) => a.name.localeCompare(b.name) || a.type.localeCompare(b.type));
  $("records").tBodies[0].replaceChildren(...rows.map((r) => {
    const label = `${r.name} ${r.type}`;
    const priority = [r.priority, r.weight, r.port].filter((v) => v !== null && v !== undefined).join(" ");
    return el("tr", { "data-id": r.id, class: highlight.has(r.id) ? "changed" : null },
      el("td", { text: r.name }), el("td", { text: r.type }),
      el("td", { class: "content", text: r.content }), el("td", { text: r.ttl }),
      el("td", { text: priority }), el("td", { text: r.comment ?? "" }),
      el("td", { class: "row-actions" },
        el("button", { type: "button", "aria-label": `Edit ${label}`, text: "Edit", onclick: () => edit(r) }),
        el("button", { type: "button", "aria-label": `Delete ${label}`, text: "Delete", onclick: () => remove(r) })));
  }));
  if (zone && rows.length === 0) {
    $("records").tBodies[0].append(el("tr", {}, el("td", { colspan: "7", class: "hint", text: "No records yet." })));
  }
}

function clearErrors() {
  for (const f of FIELDS) {
    $(`f-${f}`).removeAttribute("aria-invalid");
    $(`f-${f}-error`).textContent = "";
  }
  $("record-error").replaceChildren();
}

/** The server's refusal, at the field it names, or under the form. */
function showError(err) {
  if (err.code === "validation" && FIELDS.includes(err.field)) {
    const input = $(`f-${err.field}`);
    input.setAttribute("aria-invalid", "true");
    $(`f-${err.field}-error`).textContent = err.detail;
    input.focus();
    return;
  }
  const box = $("record-error");
  box.replaceChildren(el("p", { text: err.detail }));
  if (err.code === "conflict" && err.record) {
    box.append(
      el("p", { text: `It now reads: ${recordSummary(err.record)} (TTL ${err.record.ttl}).` }),
      el("button", { type: "button", text: "Edit the current record", onclick: () => edit(err.record) }));
  }
}

function edit(record) {
  editing = { id: record.id, version: record.version };
  clearErrors();
  for (const f of FIELDS) $(`f-${f}`).value = record[f] ?? "";
  $("record-form-title").textContent = `Edit ${record.name} ${record.type}`;
  $("record-submit").textContent = "Save changes";
  $("record-cancel").hidden = false;
  $("f-name").focus();
}

function resetForm() {
  editing = null;
  $("record").reset();
  clearErrors();
  $("record-form-title").textContent = "Add a record";
  $("record-submit").textContent = "Add record";
  $("record-cancel").hidden = true;
}

function formRecord() {
  const record = {};
  for (const f of FIELDS) {
    const value = $(`f-${f}`).value.trim();
    if (value === "") continue;
    record[f] = NUMBERS.has(f) && /^-?\d+$/.test(value) ? Number(value) : value;
  }
  return record;
}

async function save(e) {
  e.preventDefault();
  clearErrors();
  if (!zone) return showError({ detail: "Create or pick a zone first." });
  try {
    const answer = editing
      ? await request({ type: "dns.update", id: editing.id, version: editing.version, record: formRecord() })
      : await request({ type: "dns.create", zone, record: formRecord() });
    remember(answer.record);
    records.set(answer.record.id, answer.record);
    serial = answer.serial;
    showSerial();
    renderRecords();
    resetForm();
  } catch (err) {
    showError(err);
  }
}

async function remove(record) {
  try {
    const answer = await request({ type: "dns.delete", id: record.id, version: record.version });
    records.delete(record.id);
    serial = answer.serial;
    showSerial();
    renderRecords();
  } catch (err) {
    showError(err);
  }
}

// ---- Pushes ----

function changed(f) {
  const z = zones.find((x) => x.name === f.zone);
  if (z) z.serial = f.serial;
  if (f.zone !== zone) return;
  serial = f.serial;
  showSerial();
  const others = new Set();
  for (const { action, record } of f.changes) {
    if (action === "deleted") records.delete(record.id);
    else records.set(record.id, record);
    if (action !== "deleted" && !own.has(`${record.id}:${record.version}`)) others.add(record.id);
  }
  if (others.size > 0 || f.changes.some((c) => c.action === "deleted")) {
    $("live").textContent = `${f.by.username} changed ${f.changes.length} record(s) in ${f.zone}.`;
  }
  renderRecords(others);
}

conn.addEventListener("frame", ({ detail: f }) => {
  if ((f.type === "dns.result" || f.type === "error") && pending.has(f.ref)) {
    const { resolve, reject } = pending.get(f.ref);
    pending.delete(f.ref);
    (f.type === "dns.result" ? resolve : reject)(f);
    return;
  }
  switch (f.type) {
    case "dns.changed":
      changed(f);
      break;
    case "dns.zone.created":
      if (!zones.some((z) => z.name === f.zone.name)) zones.push(f.zone);
      renderZones();
      break;
    case "dns.zone.deleted":
      zones = zones.filter((z) => z.name !== f.zone.name);
      renderZones();
      break;
    case "dns.resync":
      zones = f.zones;
      renderZones();
      break;
    case "error":
      $("live").textContent = `${f.code}: ${f.detail}`;
      break;
    default:
  }
});
conn.addEventListener("state", () => {
  if (conn.state === "open") loadZones();
  // Requests in flight on a lost socket will never be answered.
  if (conn.state !== "open") {
    for (const { reject } of pending.values()) reject({ code: "offline", detail: "The connection was lost; nothing may have been changed. Try again." });
    pending.clear();
  }
});

// ---- Forms ----

$("zone").addEventListener("change", () => openZone($("zone").value));
$("new-zone").addEventListener("submit", async (e) => {
  e.preventDefault();
  const error = $("new-zone-error");
  const input = $("new-zone-name");
  error.textContent = "";
  input.removeAttribute("aria-invalid");
  try {
    const answer = await request({ type: "dns.zone.create", name: input.value.trim() });
    if (!zones.some((z) => z.name === answer.zone.name)) zones.push(answer.zone);
    zone = answer.zone.name;
    renderZones();
    await openZone(zone);
    input.value = "";
  } catch (err) {
    error.textContent = err.detail;
    input.setAttribute("aria-invalid", "true");
  }
});
$("record").addEventListener("submit", save);
$("record-cancel").addEventListener("click", resetForm);

$("export").addEventListener("click", async () => {
  if (!zone) return;
  try {
    const answer = await request({ type: "dns.export", zone });
    const link = el("a", { href: URL.createObjectURL(new Blob([answer.text], { type: "text/plain" })), download: `${zone}.zone` });
    document.body.append(link);
    link.click();
    link.remove();
    URL.revokeObjectURL(link.href);
  } catch (err) {
    $("live").textContent = err.detail;
  }
});

$("import-file").addEventListener("change", async () => {
  const file = $("import-file").files[0];
  if (file) $("import-text").value = await file.text();
});
$("import").addEventListener("submit", async (e) => {
  e.preventDefault();
  const box = $("import-errors");
  box.replaceChildren();
  if (!zone) return;
  try {
    const answer = await request({ type: "dns.import", zone, text: $("import-text").value, serial });
    serial = answer.serial;
    box.append(el("p", { class: "ok", text: `Imported: ${answer.count} record(s) changed.` }));
    await openZone(zone);
  } catch (err) {
    box.append(el("p", { text: err.detail }));
    if (err.errors) {
      box.append(el("ul", {}, ...err.errors.map((x) =>
        el("li", { text: `${x.line !== undefined ? `line ${x.line}` : `#${x.index}`}: ${x.field}: ${x.detail}` }))));
    }
    if (err.code === "conflict") {
      box.append(el("p", { text: "The zone changed meanwhile: look at its records again, then import once more." }));
      openZone(zone);
    }
  }
});

$("load-history").addEventListener("click", async () => {
  if (!zone) return;
  try {
    const { changes } = await request({ type: "dns.history", zone, limit: 50 });
    $("history").tBodies[0].replaceChildren(...changes.map((c) => el("tr", {},
      el("td", {}, el("time", { datetime: c.at, text: new Date(c.at).toLocaleString() })),
      el("td", { text: c.by.username }), el("td", { text: c.action }),
      el("td", { text: recordSummary(c.new ?? c.old) }), el("td", { text: c.serial }))));
  } catch (err) {
    $("live").textContent = err.detail;
  }
});

function follow() {
  $("dns-note").textContent = session.signedIn
    ? `Zones of ${session.username}. Changes made elsewhere show here as they happen, highlighted.`
    : "Sign in to manage your zones.";
  if (session.signedIn) conn.start();
  else {
    conn.stop("sign in to manage your zones");
    zones = [];
    zone = null;
    renderZones();
  }
}
session.addEventListener("change", follow);
follow();
