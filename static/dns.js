// The DNS panel: the user's zones and their records, changed here or seen
// changing live from elsewhere (another tab, another person). Built for
// zones of hundreds of records: search, a type filter, pages, DNS name
// order, editing in the record's row, and deletes and imports that can be
// undone for a while.

import { Connection, session } from "./conn.js";
import { el, mountShell, showState } from "./shell.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["name", "type", "content", "ttl", "priority", "weight", "port", "comment"];
const NUMBERS = new Set(["ttl", "priority", "weight", "port"]);
/** The fields each type has beyond name, content, TTL and comment. */
const EXTRA = { MX: ["priority"], SRV: ["priority", "weight", "port"] };
const CONTENT_HINT = {
  A: "An IPv4 address, as 192.0.2.1",
  AAAA: "An IPv6 address, as 2001:db8::1",
  CNAME: "The host name this name is an alias of, as www.example.net.",
  MX: "The mail server's host name, as mail.example.com.",
  NS: "A name server's host name, as ns1.example.net.",
  SRV: "The target host name (or . for no service here)",
  TXT: "The text, as v=spf1 include:_spf.example.net ~all",
  CAA: "flags tag \"value\", as 0 issue \"letsencrypt.org\"",
};
const PAGE = 50;
/** How long a delete or an import can be undone from the page. */
const UNDO_MS = 60_000;
/** How long a note about someone else's change stays. */
const NOTE_MS = 15_000;

await mountShell();
const conn = new Connection("/ws/dns/");
showState(conn, "DNS");

const pending = new Map();
// Changes this page made (`id:version`), so their pushes are not told as
// someone else's.
const own = new Set();
let zones = [];
let zone = null;
let serial = null;
let records = new Map();
let editing = null;
let page = 0;
let highlighted = new Set();
let saved = null;
let confirming = null;
let preview = null;
let historyBefore = null;
let undoTimer = null;
let noteTimer = null;
let isStaff = false;

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

const label = (r) => `${r.name} ${r.type}`;

function recordSummary(r) {
  if (!r) return "";
  const extra = [r.priority, r.weight, r.port].filter((v) => v !== null && v !== undefined);
  return `${r.name} ${r.type} ${extra.join(" ")} ${r.content}`.replace(/\s+/g, " ");
}

/** A record's fields as a request sends them. */
function asSent(r) {
  const sent = {};
  for (const f of FIELDS) if (r[f] !== undefined && r[f] !== null) sent[f] = r[f];
  return sent;
}

// ---- DNS name order ----

const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });

/** Names compared label by label from the right, the apex first. */
function byDnsName(a, b) {
  const la = a.name === "@" ? [] : a.name.split(".").reverse();
  const lb = b.name === "@" ? [] : b.name.split(".").reverse();
  for (let i = 0; i < Math.min(la.length, lb.length); i++) {
    const c = collator.compare(la[i], lb[i]);
    if (c !== 0) return c;
  }
  return la.length - lb.length || a.type.localeCompare(b.type) || collator.compare(a.content, b.content);
}

// ---- Zones ----

/** Lists the zones (by owner for staff); opens another one if the open one is gone. */
function renderZones() {
  const owner = $("owner-filter").value;
  const shown = zones.filter((z) => !owner || String(z.owner.id) === owner);
  $("zone").replaceChildren(...shown.map((z) => el("option", {
    value: z.name, text: isStaff ? `${z.name} (${z.owner.username})` : z.name,
  })));
  const owners = new Map(zones.map((z) => [String(z.owner.id), z.owner.username]));
  $("owner-filter").replaceChildren(el("option", { value: "", text: "Every customer" }),
    ...[...owners].sort((a, b) => collator.compare(a[1], b[1]))
      .map(([id, name]) => el("option", { value: id, text: `${name} (id ${id})` })));
  $("owner-filter").value = owners.has(owner) ? owner : "";
  if (zone && shown.some((z) => z.name === zone)) $("zone").value = zone;
  else openZone(shown[0]?.name ?? null);
}

async function loadZones() {
  try {
    const answer = await request({ type: "dns.zones" });
    zones = answer.zones;
    isStaff = answer.staff;
    describe();
    const wanted = decodeURIComponent(location.hash.slice(1));
    const open = [zone, wanted].find((name) => zones.some((z) => z.name === name));
    zone = open ?? null;
    renderZones();
    if (open) await openZone(open);
  } catch (err) {
    note(err.detail);
  }
}

async function openZone(name) {
  if (name !== zone) {
    page = 0;
    historyBefore = null;
    $("history").tBodies[0].replaceChildren();
    $("more-history").hidden = true;
    $("history-end").textContent = "";
    hidePreview();
    clearUndo();
    resetForm();
  }
  zone = name;
  records = new Map();
  renderRecords();
  $("delete-zone").hidden = !name;
  $("delete-zone-confirm").hidden = true;
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
    note(err.detail);
  }
}

function showSerial() {
  const z = zones.find((x) => x.name === zone);
  const owner = z && (isStaff || z.owner.username !== session.username) ? ` · owned by ${z.owner.username} (id ${z.owner.id})` : "";
  $("zone-serial").textContent = `Serial ${serial}${owner}`;
}

function askDeleteZone() {
  $("delete-zone-question").textContent =
    `Delete the zone ${zone} and its ${records.size} record(s)? Its history goes with it; this cannot be undone.`;
  $("delete-zone-yes").textContent = `Delete ${zone}`;
  $("delete-zone-error").textContent = "";
  $("delete-zone-confirm").hidden = false;
  $("delete-zone-no").focus();
}

async function deleteZone() {
  const name = zone;
  try {
    await request({ type: "dns.zone.delete", zone: name, serial });
    zones = zones.filter((z) => z.name !== name);
    zone = null;
    $("delete-zone-confirm").hidden = true;
    renderZones();
    note(`Deleted the zone ${name}.`);
  } catch (err) {
    $("delete-zone-error").textContent = err.code === "conflict"
      ? "The zone changed meanwhile: look at its records, then delete again if you still mean to."
      : err.detail;
    if (err.code === "conflict") openZone(name);
  }
}

// ---- Records ----

/** The records the search and the type filter let through, in DNS name order. */
function filtered() {
  const words = $("search").value.trim().toLowerCase();
  const type = $("type-filter").value;
  return [...records.values()]
    .filter((r) => (!type || r.type === type) &&
      (!words || `${r.name} ${r.fqdn} ${r.content} ${r.comment ?? ""}`.toLowerCase().includes(words)))
    .sort(byDnsName);
}

const cell = (heading, text, cls) => el("td", { "data-label": heading, class: cls, text: text ?? "" });

function recordRow(r) {
  const classes = [highlighted.has(r.id) ? "changed" : null, saved === r.id ? "saved" : null].filter(Boolean);
  return el("tr", { "data-id": r.id, class: classes.join(" ") || null },
    cell("Name", r.name, "name"), cell("Type", r.type), cell("Content", r.content, "content"),
    cell("TTL", r.ttl), cell("Priority", r.priority), cell("Weight", r.weight), cell("Port", r.port),
    cell("Comment", r.comment, "comment"),
    el("td", { class: "row-actions", "data-label": "Actions" },
      el("button", { type: "button", "aria-label": `Edit ${label(r)}`, text: "Edit", onclick: () => edit(r) }),
      el("button", { type: "button", "aria-label": `Delete ${label(r)}`, text: "Delete", onclick: () => askDelete(r) })));
}

/** Names in the zone that point at `r`'s name (MX, CNAME, NS and SRV targets). */
function pointingAt(r) {
  return [...records.values()].filter((o) => o.id !== r.id && ["CNAME", "MX", "NS", "SRV"].includes(o.type) &&
    o.content.toLowerCase() === r.fqdn.toLowerCase());
}

function confirmRow(r) {
  const users = pointingAt(r);
  const warning = users.length > 0
    ? el("p", { class: "error", text: `${users.map(label).join(", ")} ${users.length === 1 ? "points" : "point"} at ${r.fqdn}: deleting it breaks ${users.length === 1 ? "that record" : "those records"}.` })
    : null;
  return el("tr", { class: "confirm-row" }, el("td", { colspan: "9" },
    el("div", { class: "confirm", role: "group", "aria-label": `Delete ${label(r)}?` },
      el("p", { text: `Delete ${recordSummary(r)}?` }), warning,
      el("div", { class: "actions" },
        el("button", { type: "button", class: "danger", text: `Delete ${label(r)}`, onclick: () => remove(r) }),
        el("button", { type: "button", class: "quiet", text: "Keep it", onclick: () => { confirming = null; renderRecords(); } })))));
}

function renderRecords() {
  const rows = filtered();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE));
  page = Math.min(page, pages - 1);
  const shown = rows.slice(page * PAGE, (page + 1) * PAGE);
  const body = $("records").tBodies[0];
  // The form, if it is open in a row, goes home before the rows are made again.
  if ($("record").closest("tr")) $("record-home").insertBefore($("record"), $("record-away"));
  body.replaceChildren(...shown.flatMap((r) => {
    const row = recordRow(r);
    if (confirming === r.id) return [row, confirmRow(r)];
    if (editing?.id === r.id) {
      row.classList.add("editing");
      return [row, el("tr", { class: "edit-row" }, el("td", { colspan: "9" }, $("record")))];
    }
    return [row];
  }));
  $("record-away").hidden = !$("record").closest("tr");
  if (zone && rows.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: "9", class: "hint",
      text: records.size === 0 ? "No records yet." : "No record matches the search." })));
  }
  const total = records.size;
  $("record-count").textContent = !zone ? "" : rows.length === total
    ? `${total} record(s)${pages > 1 ? `, showing ${page * PAGE + 1}–${page * PAGE + shown.length}` : ""}`
    : `${rows.length} of ${total} record(s) match${pages > 1 ? `, showing ${page * PAGE + 1}–${page * PAGE + shown.length}` : ""}`;
  $("pager").hidden = pages <= 1;
  $("page-of").textContent = `Page ${page + 1} of ${pages}`;
  $("prev-page").disabled = page === 0;
  $("next-page").disabled = page >= pages - 1;
}

/** Opens the page that holds record `id`, for an edit or a saved row to be seen. */
function showRecord(id) {
  const at = filtered().findIndex((r) => r.id === id);
  if (at >= 0) page = Math.floor(at / PAGE);
}

function clearErrors() {
  for (const f of FIELDS) {
    $(`f-${f}`).removeAttribute("aria-invalid");
    $(`f-${f}-error`).textContent = "";
  }
  $("record-error").replaceChildren();
}

function fieldError(field, detail) {
  const input = $(`f-${field}`);
  input.setAttribute("aria-invalid", "true");
  $(`f-${field}-error`).textContent = detail;
  input.focus();
}

/** The fields, hints and required marks of the type picked. */
function fitForm() {
  const type = $("f-type").value;
  for (const box of $("record").querySelectorAll("[data-for]")) {
    box.hidden = !box.dataset.for.split(" ").includes(type);
    box.querySelector("input").required = !box.hidden;
  }
  $("f-content-hint").textContent = CONTENT_HINT[type] ?? "";
}

/** The server's refusal, at the field it names, or under the form. */
function showError(err, typed) {
  if (err.code === "validation" && FIELDS.includes(err.field)) return fieldError(err.field, err.detail);
  const box = $("record-error");
  box.replaceChildren(el("p", { text: err.detail }));
  if (err.code === "conflict" && err.record) {
    const current = err.record;
    const differ = typed ? Object.keys(typed).filter((f) => String(typed[f] ?? "") !== String(current[f] ?? "")) : [];
    box.append(el("p", { text: `It now reads: ${recordSummary(current)} (TTL ${current.ttl}).` }));
    if (differ.length > 0) {
      box.append(el("ul", { class: "changes" }, ...differ.map((f) =>
        el("li", { text: `${f}: yours ${typed[f] ?? "(empty)"}, now ${current[f] ?? "(empty)"}` }))));
    }
    box.append(el("div", { class: "actions" },
      el("button", { type: "button", text: "Apply my values on top", onclick: () => {
        editing = { id: current.id, version: current.version };
        submit(typed);
      } }),
      el("button", { type: "button", class: "quiet", text: "Edit the current record", onclick: () => edit(current) })));
  }
}

function edit(record) {
  editing = { id: record.id, version: record.version };
  confirming = null;
  clearErrors();
  for (const f of FIELDS) $(`f-${f}`).value = record[f] ?? "";
  fitForm();
  $("record-form-caption").textContent = `Edit ${label(record)}`;
  $("record-submit").textContent = "Save changes";
  $("record-cancel").hidden = false;
  showRecord(record.id);
  renderRecords();
  $("f-content").focus();
}

function resetForm() {
  const wasEditing = editing;
  editing = null;
  $("record").reset();
  clearErrors();
  fitForm();
  $("record-form-caption").textContent = "Add a record";
  $("record-submit").textContent = "Add record";
  $("record-cancel").hidden = true;
  if (wasEditing) renderRecords();
}

/**
 * The form as a record. Editing, an emptied field is sent as null so that
 * it is cleared, and a field the type does not have is cleared too.
 */
function formRecord() {
  const record = {};
  for (const f of FIELDS) {
    const input = $(`f-${f}`);
    const value = input.value.trim();
    const absent = input.closest("[data-for]")?.hidden;
    if (absent || value === "") {
      if (editing && f !== "name" && f !== "content") record[f] = null;
      continue;
    }
    record[f] = NUMBERS.has(f) && /^-?\d+$/.test(value) ? Number(value) : value;
  }
  return record;
}

/** The form's own check before anything is sent: required fields filled. */
function missing() {
  const type = $("f-type").value;
  for (const f of ["name", "content", ...(EXTRA[type] ?? [])]) {
    if ($(`f-${f}`).value.trim() === "") {
      const name = $(`f-${f}`).labels[0].firstChild.textContent.trim();
      return [f, `${name} is required${EXTRA[type]?.includes(f) ? ` for ${type} records` : ""}.`];
    }
  }
  return null;
}

async function save(e) {
  e.preventDefault();
  clearErrors();
  if (!zone) return showError({ detail: "Create or pick a zone first." });
  const gap = missing();
  if (gap) return fieldError(...gap);
  await submit(formRecord());
}

async function submit(typed) {
  clearErrors();
  try {
    const answer = editing
      ? await request({ type: "dns.update", id: editing.id, version: editing.version, record: typed })
      : await request({ type: "dns.create", zone, record: typed });
    remember(answer.record);
    records.set(answer.record.id, answer.record);
    serial = answer.serial;
    showSerial();
    saved = answer.record.id;
    highlighted.delete(saved);
    resetForm();
    showRecord(saved);
    renderRecords();
    note(`Saved ${label(answer.record)}.`, "ok");
    document.querySelector(`#records tr[data-id="${saved}"] button`)?.focus();
  } catch (err) {
    showError(err, typed);
  }
}

function askDelete(record) {
  confirming = record.id;
  if (editing) resetForm();
  renderRecords();
  // Focus on keeping it: a second Enter must not delete.
  document.querySelector("#records .confirm-row button.quiet")?.focus();
}

async function remove(record) {
  own.add(`${record.id}:${record.version}`);
  try {
    const answer = await request({ type: "dns.delete", id: record.id, version: record.version });
    records.delete(record.id);
    confirming = null;
    serial = answer.serial;
    showSerial();
    renderRecords();
    offerUndo(`Deleted ${recordSummary(record)}.`, () =>
      request({ type: "dns.create", zone, record: asSent(record) }).then((a) => {
        remember(a.record);
        records.set(a.record.id, a.record);
        serial = a.serial;
        return `Restored ${label(a.record)}.`;
      }));
  } catch (err) {
    confirming = null;
    renderRecords();
    note(err.detail);
  }
}

// ---- Undo and notes ----

function clearUndo() {
  clearTimeout(undoTimer);
  $("undo-bar").replaceChildren();
}

/** Says what was done, with an Undo button for a while. */
function offerUndo(what, undo) {
  clearUndo();
  const button = el("button", { type: "button", text: "Undo", onclick: async () => {
    button.disabled = true;
    try {
      const done = await undo();
      clearUndo();
      showSerial();
      renderRecords();
      note(done, "ok");
    } catch (err) {
      clearUndo();
      note(err.code === "conflict" ? "The zone changed meanwhile, so that can no longer be undone from here." : err.detail);
    }
  } });
  $("undo-bar").replaceChildren(el("span", { text: `${what} ` }), button);
  button.focus();
  undoTimer = setTimeout(clearUndo, UNDO_MS);
}

function note(text, kind = "") {
  clearTimeout(noteTimer);
  $("live").textContent = text;
  $("live").className = `hint ${kind}`;
  noteTimer = setTimeout(() => { $("live").textContent = ""; }, NOTE_MS);
}

// ---- Pushes ----

/** A sentence naming the records a change touched, at most five of them. */
function told(changes) {
  const words = { created: "added", updated: "changed", deleted: "deleted" };
  const names = changes.slice(0, 5).map(({ action, record }) => `${words[action]} ${label(record)}`);
  if (changes.length > 5) names.push(`${changes.length - 5} more`);
  return names.join(", ");
}

function changed(f) {
  const z = zones.find((x) => x.name === f.zone);
  if (z) z.serial = f.serial;
  if (f.zone !== zone) return;
  serial = f.serial;
  showSerial();
  for (const { action, record } of f.changes) {
    if (action === "deleted") records.delete(record.id);
    else records.set(record.id, record);
  }
  renderRecords();
  // This page's own change may be pushed before its reply comes: looked at
  // once the reply has had time to mark it as ours.
  setTimeout(() => {
    const theirs = f.changes.filter(({ record }) => !own.has(`${record.id}:${record.version}`));
    if (theirs.length === 0) return;
    for (const { action, record } of theirs) if (action !== "deleted") highlighted.add(record.id);
    renderRecords();
    const who = f.by.username === session.username ? "You (in another tab or window)" : f.by.username;
    note(`${who} ${told(theirs)} in ${f.zone}.`);
  }, 300);
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
      if (zone) openZone(zone);
      break;
    case "error":
      note(`${f.code}: ${f.detail}`);
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

// ---- Import ----

function hidePreview() {
  preview = null;
  $("import-preview").hidden = true;
}

function importErrors(err) {
  const box = $("import-errors");
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

async function previewImport(e) {
  e.preventDefault();
  $("import-errors").replaceChildren();
  hidePreview();
  if (!zone) return;
  const mode = new FormData($("import")).get("mode");
  const text = $("import-text").value;
  try {
    const answer = await request({ type: "dns.import", zone, text, serial, mode, dry_run: true });
    preview = { mode, text, serial: answer.serial };
    const { created, updated, deleted } = answer;
    $("import-summary").textContent = created + updated + deleted === 0
      ? "The zone already holds what the file says: importing changes nothing."
      : `The import would add ${created}, change ${updated} and delete ${deleted} record(s) (+${created} ~${updated} −${deleted}).`;
    $("import-warning").textContent = deleted > 0 ? `It deletes ${deleted} record(s) that the file does not hold.` : "";
    const words = { created: "+ add", updated: "~ change", deleted: "− delete" };
    const listed = (answer.changes ?? []).slice(0, 100).map((c) => el("li", { class: c.action },
      `${words[c.action]} ${recordSummary(c.record)}`,
      c.old ? ` (was ${recordSummary(c.old)}, TTL ${c.old.ttl})` : "", c.action === "updated" ? `, TTL ${c.record.ttl}` : ""));
    const more = answer.count - listed.length;
    $("import-changes").replaceChildren(...listed, ...(more > 0 ? [el("li", { text: `and ${more} more` })] : []));
    $("import-apply").textContent = deleted > 0
      ? `Import and delete ${deleted} record(s)`
      : `Import ${created + updated} change(s)`;
    $("import-apply").hidden = created + updated + deleted === 0;
    $("import-preview").hidden = false;
    $("import-apply").hidden ? $("import-cancel").focus() : $("import-apply").focus();
  } catch (err) {
    importErrors(err);
  }
}

/** Applies the previewed import; its inverse is offered as one batch. */
async function applyImport() {
  if (!preview) return;
  const before = new Map(records);
  const { mode, text } = preview;
  $("import-errors").replaceChildren();
  try {
    const answer = await request({ type: "dns.import", zone, text, serial: preview.serial, mode });
    hidePreview();
    // The next import starts from the safe choice again.
    $("import").querySelector("input[name=mode][value=merge]").checked = true;
    for (const r of answer.records ?? []) remember(r);
    serial = answer.serial;
    await openZone(zone);
    const summary = `Imported: ${answer.count} record(s) changed.`;
    $("import-errors").replaceChildren(el("p", { class: "ok", text: summary }));
    if (!answer.records) return;
    const inverse = answer.records.map((r) => {
      const was = before.get(r.id);
      if (!was) return { op: "delete", id: r.id, version: r.version };
      if (was.version === r.version) return { op: "create", record: asSent(was) };
      const back = asSent(was);
      for (const f of ["priority", "weight", "port", "comment"]) back[f] ??= null;
      return { op: "update", id: r.id, version: r.version, record: back };
    });
    const undoneAt = answer.serial;
    offerUndo(summary, () => request({ type: "dns.batch", zone, serial: undoneAt, changes: inverse }).then(async (a) => {
      for (const r of a.records ?? []) remember(r);
      await openZone(zone);
      return `Undid the import: ${a.count} record(s) restored.`;
    }));
  } catch (err) {
    hidePreview();
    importErrors(err);
  }
}

// ---- History ----

/** Old → new for each field an update changed. */
function delta(c) {
  if (c.action !== "updated" || !c.old || !c.new) return "";
  return FIELDS.filter((f) => (c.old[f] ?? null) !== (c.new[f] ?? null))
    .map((f) => `${f}: ${c.old[f] ?? "(none)"} → ${c.new[f] ?? "(none)"}`).join("; ");
}

async function loadHistory(more) {
  if (!zone) return;
  if (!more) {
    historyBefore = null;
    $("history").tBodies[0].replaceChildren();
  }
  try {
    const ask = { type: "dns.history", zone, limit: PAGE };
    if (historyBefore !== null) ask.before = historyBefore;
    const { changes } = await request(ask);
    $("history").tBodies[0].append(...changes.map((c) => el("tr", {},
      el("td", {}, el("time", { datetime: c.at, text: new Date(c.at).toLocaleString() })),
      el("td", { text: c.by.username }), el("td", { text: c.action }),
      el("td", { text: recordSummary(c.new ?? c.old) }), el("td", { text: delta(c) }), el("td", { text: c.serial }))));
    if (changes.length > 0) historyBefore = changes[changes.length - 1].id;
    const end = changes.length < PAGE;
    $("more-history").hidden = end;
    $("history-end").textContent = end ? "That is the zone's whole history." : "";
  } catch (err) {
    note(err.detail);
  }
}

// ---- Forms ----

$("zone").addEventListener("change", () => openZone($("zone").value));
$("owner-filter").addEventListener("change", renderZones);
$("delete-zone").addEventListener("click", askDeleteZone);
$("delete-zone-yes").addEventListener("click", deleteZone);
$("delete-zone-no").addEventListener("click", () => {
  $("delete-zone-confirm").hidden = true;
  $("delete-zone").focus();
});
$("new-zone").addEventListener("submit", async (e) => {
  e.preventDefault();
  const error = $("new-zone-error");
  const input = $("new-zone-name");
  error.textContent = "";
  input.removeAttribute("aria-invalid");
  const ask = { type: "dns.zone.create", name: input.value.trim() };
  const owner = $("new-zone-owner").value.trim();
  if (isStaff && owner !== "") ask.owner = Number(owner);
  try {
    const answer = await request(ask);
    if (!zones.some((z) => z.name === answer.zone.name)) zones.push(answer.zone);
    zone = answer.zone.name;
    renderZones();
    await openZone(zone);
    input.value = "";
    $("new-zone-owner").value = "";
  } catch (err) {
    error.textContent = err.detail;
    input.setAttribute("aria-invalid", "true");
  }
});
$("record").addEventListener("submit", save);
$("record-cancel").addEventListener("click", () => {
  const id = editing?.id;
  resetForm();
  document.querySelector(`#records tr[data-id="${id}"] button`)?.focus();
});
$("f-type").addEventListener("change", fitForm);
$("to-add").addEventListener("click", (e) => {
  e.preventDefault();
  resetForm();
  $("f-type").focus();
});
for (const id of ["search", "type-filter"]) {
  $(id).addEventListener("input", () => {
    page = 0;
    renderRecords();
  });
}
$("prev-page").addEventListener("click", () => { page -= 1; renderRecords(); });
$("next-page").addEventListener("click", () => { page += 1; renderRecords(); });

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
    note(err.detail);
  }
});

$("import-file").addEventListener("change", async () => {
  const file = $("import-file").files[0];
  if (file) $("import-text").value = await file.text();
});
$("import").addEventListener("submit", previewImport);
$("import-apply").addEventListener("click", applyImport);
$("import-cancel").addEventListener("click", () => {
  hidePreview();
  $("import-text").focus();
});
$("load-history").addEventListener("click", () => loadHistory(false));
$("more-history").addEventListener("click", () => loadHistory(true));

/** Says whose zones these are; staff see every customer's, with owners. */
function describe() {
  if (!session.signedIn) isStaff = false;
  $("owner-filter-box").hidden = !isStaff;
  $("new-zone-owner-box").hidden = !isStaff;
  $("dns-note").textContent = !session.signedIn
    ? "Sign in to manage your zones."
    : isStaff
      ? "Every customer's zones (you are staff). Changes made elsewhere show here as they happen, highlighted."
      : `Zones of ${session.username}. Changes made elsewhere show here as they happen, highlighted.`;
}

function follow() {
  describe();
  if (session.signedIn) conn.start();
  else {
    conn.stop("sign in to manage your zones");
    zones = [];
    zone = null;
    renderZones();
  }
}
session.addEventListener("change", follow);
fitForm();
follow();
