// The staff console: the hub's live figures, global analytics and the
// staff-only management room. The figures API tells a non-staff user why
// they cannot enter (a refused socket handshake cannot say why in a browser).

import { ApiError, Connection, session } from "./conn.js";
import { el, mountShell } from "./shell.js";
import { mountRoom } from "./room.js";
import { MetricsView } from "./metrics.js";

const $ = (id) => document.getElementById(id);
const FIGURES_EVERY_MS = 5000;
let room = null;
let analytics = null;
let timer = null;

async function figures() {
  const res = await fetch("/api/stats/", { headers: session.authorization(), cache: "no-store" });
  const body = await res.json().catch(() => null);
  if (res.status === 401 && session.signedIn) {
    // An expired access token: refreshed, then asked once more.
    await session.refresh();
    return figures();
  }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

function showFigures(stats) {
  const tiles = Object.entries(stats.connections).map(([endpoint, n]) => [`${endpoint} connections`, n]);
  tiles.push(["chat rooms", stats.rooms]);
  $("figures").replaceChildren(...tiles.map(([name, value]) =>
    el("li", { class: "tile", "data-figure": name },
      el("span", { class: "tile-name", text: name }), el("span", { class: "tile-value", text: value }))));
}

function leave(why) {
  clearTimeout(timer);
  room?.stop();
  analytics?.stop();
  room = analytics = null;
  $("console").hidden = true;
  $("staff-note").textContent = why;
}

async function poll() {
  try {
    showFigures(await figures());
    timer = setTimeout(poll, FIGURES_EVERY_MS);
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) {
      leave(`You cannot enter: ${err.message}. Signed in as ${session.username}, who is not staff.`);
    } else if (err instanceof ApiError && err.status === 401) {
      leave(`You cannot enter: ${err.message}`);
    } else {
      // The hub is unreachable for now (restarting): try again.
      timer = setTimeout(poll, FIGURES_EVERY_MS);
    }
  }
}

async function enter() {
  leave("Checking your account…");
  if (!session.signedIn) return leave("Sign in with a staff account to use the console.");
  try {
    showFigures(await figures());
  } catch (err) {
    const why = err instanceof ApiError && err.status === 403
      ? `Signed in as ${session.username}, who is not staff: ${err.message}.`
      : err.message;
    return leave(`You cannot enter. ${why}`);
  }
  $("staff-note").textContent = `Signed in as ${session.username} (staff).`;
  $("console").hidden = false;
  timer = setTimeout(poll, FIGURES_EVERY_MS);
  room = mountRoom($("management"), "management", { guest: false });

  const view = new MetricsView({ tiles: $("global"), empty: $("global-empty") });
  analytics = new Connection("/ws/analytics/");
  analytics.addEventListener("frame", ({ detail: f }) => {
    if (f.scope === "global" && (f.type === "analytics.snapshot" || f.type === "analytics.update")) view.apply(f);
    if (f.type === "analytics.unsubscribed") leave(`Global analytics stopped: ${f.reason}`);
  });
  analytics.addEventListener("state", () => {
    if (analytics?.state === "open") analytics.send({ type: "analytics.subscribe", ref: analytics.nextRef("g"), scope: "global" });
  });
  analytics.start();
}

await mountShell();
session.addEventListener("change", enter);
enter();
