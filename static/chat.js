// The chat page: pick or type a public room, chat as a guest or signed in,
// under a name the page shows. The room is kept in the URL fragment, so a
// reload lands in it again.

import { session } from "./conn.js";
import { el, mountShell } from "./shell.js";
import { mountRoom } from "./room.js";

const ROOM = /^[A-Za-z0-9_-]{1,64}$/;
let current = null;

function join(room) {
  current?.stop();
  document.getElementById("room").value = room;
  history.replaceState(null, "", `#${room}`);
  const identity = document.getElementById("identity");
  identity.textContent = session.signedIn
    ? `You chat as ${session.username}.`
    : "You chat as a guest; sign in to use your name.";
  current = mountRoom(document.getElementById("chat"), room, { guest: true });
  // The hub says who this tab is in the room: a guest keeps the name it is
  // given for as long as the tab lives.
  current.addEventListener("frame", ({ detail: f }) => {
    if (f.type !== "chat.identity") return;
    identity.replaceChildren("You are ", el("strong", { id: "me", text: f.user.username }),
      f.user.id === null ? ", a guest; sign in to use your own name." : ".");
  });
}

await mountShell();
document.getElementById("join").addEventListener("submit", (e) => {
  e.preventDefault();
  join(document.getElementById("room").value);
});
// Signing in or out joins again under the new name.
session.addEventListener("change", () => join(document.getElementById("room").value));
const wanted = decodeURIComponent(location.hash.slice(1));
join(ROOM.test(wanted) ? wanted : "lobby");
