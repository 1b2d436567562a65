// A minimal client of the wire contract: joins a room, shows history,
// presence and messages, and reconnects with ?since= so nothing is lost.
"use strict";
const $ = (id) => document.getElementById(id);
let socket = null;
let lastId = null;
let retry = 0;

function show(text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  $("log").append(li);
  li.scrollIntoView({ block: "end" });
}

function showMessage(m) {
  lastId = m.id;
  show(`${m.user.username}: ${m.message}`, m.user.is_staff ? "staff" : "");
}

function connect(room) {
  const params = new URLSearchParams();
  if (lastId !== null) params.set("since", lastId);
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/chat/${room}/?${params}`;
  const token = sessionStorage.getItem("hub.access");
  socket = token ? new WebSocket(url, ["bearer", token]) : new WebSocket(url);
  socket.onopen = () => { retry = 0; $("status").textContent = `in ${room}`; };
  socket.onmessage = (ev) => {
    const f = JSON.parse(ev.data);
    switch (f.type) {
      case "chat.history": f.messages.forEach(showMessage); if (f.truncated) show("(some messages were missed)", "note"); break;
      case "chat.message": showMessage(f); break;
      case "presence": $("members").replaceChildren(...f.members.map((m) => Object.assign(document.createElement("li"), { textContent: m.username }))); break;
      case "presence.join": $("members").append(Object.assign(document.createElement("li"), { textContent: f.user.username })); break;
      case "presence.leave": [...$("members").children].find((li) => li.textContent === f.user.username)?.remove(); break;
      case "presence.count": $("members").replaceChildren(Object.assign(document.createElement("li"), { textContent: `${f.count} here` })); break;
      case "error": show(`error: ${f.code}: ${f.detail}`, "error"); break;
    }
  };
  socket.onclose = (ev) => {
    $("status").textContent = `disconnected (${ev.code})`;
    if ([1008, 1009, 4001, 4003].includes(ev.code)) return;
    const delay = Math.min(30000, 500 * 2 ** retry++) * (0.5 + Math.random());
    setTimeout(() => connect(room), delay);
  };
}

function join(room) {
  if (socket) { socket.onclose = null; socket.close(); }
  lastId = null;
  $("log").replaceChildren();
  $("members").replaceChildren();
  $("room").value = room;
  location.hash = room;
  connect(room);
}

$("join").onsubmit = (e) => { e.preventDefault(); join($("room").value); };
$("say").onsubmit = (e) => {
  e.preventDefault();
  if (socket && socket.readyState === WebSocket.OPEN && $("message").value.trim()) {
    socket.send(JSON.stringify({ type: "chat.message", message: $("message").value }));
    $("message").value = "";
  }
};

// A visitor lands in the room named by the URL fragment (#support), or the lobby.
join(/^[A-Za-z0-9_-]{1,64}$/.test(location.hash.slice(1)) ? location.hash.slice(1) : "lobby");
