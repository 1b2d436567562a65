// The dashboard: the signed-in user's metrics as tiles and a chart each,
// the last hour first, then live.

import { Connection, session } from "./conn.js";
import { mountShell, showState } from "./shell.js";
import { MetricsView } from "./metrics.js";

await mountShell();
const $ = (id) => document.getElementById(id);
const view = new MetricsView({
  tiles: $("tiles"), charts: $("chart"), range: $("chart-range"), empty: $("empty"), panel: $("metrics"),
});
const note = $("dashboard-note");
const conn = new Connection("/ws/analytics/");
showState(conn, "Dashboard");
conn.addEventListener("frame", ({ detail: f }) => {
  if (f.type === "analytics.snapshot" || f.type === "analytics.update") view.apply(f);
});

function follow() {
  if (session.signedIn) {
    note.textContent = `Metrics of ${session.username}, as they change.`;
    conn.start();
  } else {
    note.textContent = "Sign in to see your metrics.";
    conn.stop("sign in to see your metrics");
    view.clear();
  }
}
session.addEventListener("change", follow);
follow();
