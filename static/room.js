// One chat room on the page: history on join, presence (or the member count
// in a crowded room), messages (the member's own marked as theirs), errors
// shown beside the message box, and a refusal said in words. The chat page
// and the staff console (the management room) both use it.

import { Connection } from "./conn.js";
import { el, showState } from "./shell.js";

function time(iso) {
  const at = new Date(iso);
  return el("time", { datetime: iso, text: at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) });
}

/**
 * Joins `room` inside `box` (which gets the room's markup) and returns the
 * connection; `guest` lets a signed-out visitor join.
 */
export function mountRoom(box, room, { guest }) {
  let lastId = null;
  // Who this member is in the room, as its frames show it (`chat.identity`).
  let me = null;
  const members = new Map();
  const log = el("ol", { class: "log", id: "log", "aria-label": `Messages in ${room}`, "aria-live": "polite" });
  const people = el("ul", { class: "members", id: "members", "aria-label": "Members" });
  const count = el("p", { class: "count", id: "member-count" });
  const input = el("textarea", { id: "message", name: "message", rows: "2", required: true, "aria-describedby": "say-error" });
  const error = el("p", { id: "say-error", class: "error", role: "alert" });
  const form = el("form", { id: "say", class: "say" },
    el("label", { for: "message", text: "Message" }), input,
    el("button", { type: "submit", text: "Send" }), error);
  box.replaceChildren(
    el("div", { class: "room" },
      el("section", { class: "people", "aria-labelledby": "people-title" },
        el("h2", { id: "people-title", text: "Here now" }), count, people),
      el("section", { class: "talk", "aria-labelledby": "talk-title" },
        el("h2", { id: "talk-title" }, "Room ", el("span", { class: "room-name", text: room })),
        log, form)));

  const conn = new Connection(`/ws/chat/${encodeURIComponent(room)}/`, {
    guest,
    // Presence as one coalesced diff per interval, not a frame per arrival;
    // who the member is first (with a guest's key, kept by conn.js).
    query: () => `identity=1&presence=diff${lastId === null ? "" : `&since=${lastId}`}`,
  });
  showState(conn, `Room ${room}`);

  const note = (text, cls = "note") => {
    log.append(el("li", { class: cls, text }));
    log.lastElementChild.scrollIntoView({ block: "nearest" });
  };
  const mine = (u) => me !== null && (me.id === null
    ? u.id === null && u.username === me.username
    : u.id === me.id);
  const you = (u) => (mine(u) ? el("span", { class: "you", text: " (you)" }) : null);
  const message = (m) => {
    lastId = m.id;
    const classes = ["message", m.user.is_staff && "staff", mine(m.user) && "mine"].filter(Boolean);
    const item = el("li", { class: classes.join(" "), "data-id": m.id },
      el("span", { class: "author", text: m.user.username }), you(m.user), " ", time(m.sent_at), " ",
      el("span", { class: "text", text: m.message }));
    log.append(item);
    item.scrollIntoView({ block: "nearest" });
  };
  const renderMembers = () => {
    people.replaceChildren(...[...members.values()].map((u) => {
      const classes = [u.is_staff && "staff", mine(u) && "me"].filter(Boolean).join(" ");
      return el("li", { class: classes || null, text: u.username });
    }));
    count.textContent = `${members.size} here`;
  };
  const key = (u) => (u.id === null ? `guest:${u.username}` : `user:${u.id}`);

  conn.addEventListener("frame", ({ detail: f }) => {
    switch (f.type) {
      case "chat.identity":
        me = f.user;
        break;
      case "chat.history":
        f.messages.forEach(message);
        if (f.truncated) note("Some messages from while you were away are no longer kept.");
        break;
      case "chat.message":
        message(f);
        if (f.ref) {
          input.value = "";
          error.textContent = "";
          input.removeAttribute("aria-invalid");
        }
        break;
      case "presence":
        members.clear();
        f.members.forEach((u) => members.set(key(u), u));
        renderMembers();
        break;
      case "presence.join":
      case "presence.update":
        members.set(key(f.user), f.user);
        renderMembers();
        break;
      case "presence.leave":
        members.delete(key(f.user));
        renderMembers();
        break;
      case "presence.diff":
        [...f.joins, ...f.updates].forEach((u) => members.set(key(u), u));
        f.leaves.forEach((u) => members.delete(key(u)));
        renderMembers();
        break;
      case "presence.count":
        people.replaceChildren();
        count.textContent = `${f.count} here (too many to list)`;
        break;
      case "error":
        if (f.ref?.startsWith("m")) {
          const why = { rate_limited: "Slow down: you are sending too fast.", too_large: "That message is too long." }[f.code];
          error.textContent = why ? `${why} ${f.detail}` : f.detail;
          input.setAttribute("aria-invalid", "true");
        } else {
          note(`${f.code}: ${f.detail}`, "error");
        }
        break;
      default:
    }
  });
  conn.addEventListener("closed", ({ detail }) => {
    if (detail.code === 4003) note("You can no longer be in this room.", "error");
  });
  conn.addEventListener("refused", ({ detail }) => {
    note(detail.code === "staff_only"
      ? `The room ${room} is for staff only: sign in with a staff account to enter it, or pick another room.`
      : `The hub does not let you into this room: ${detail.detail || detail.code}.`, "error");
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!input.value.trim()) return;
    if (!conn.send({ type: "chat.message", ref: conn.nextRef("m"), message: input.value })) {
      error.textContent = "Not connected: the message was not sent. It stays here to send again.";
    }
  });
  input.addEventListener("keydown", (e) => {
    // Enter sends; Shift+Enter makes a new line.
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  conn.start();
  return conn;
}
