// The dashboard and the staff console with real numbers: with no data, an
// empty state that says how data arrives and no axes; with 20 metrics
// ingested through the ingest API, a chart per metric with axes in its
// unit, tiles that fit their values and are marked only when they change,
// a colour each, the last hour again after a reload; for staff, the
// average of a percentage over two customers.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  WAIT, accessible, checkPage, connected, fitsWidth, open, screenshot, serveSuite, signIn,
} from "./hub.mjs";

const PASSWORD = "correct horse battery";

/** Twenty metrics of one customer, in every unit, small and large. */
const METRICS = {
  api_requests: 123456789,
  bandwidth_bytes: 155189248,
  cache_hit_pct: 97.5,
  cpu_pct: 42,
  db_connections: 37,
  disk_bytes: 53687091200,
  disk_used_percent: 71.25,
  errors: 3,
  latency_ms: 183.25,
  memory_bytes: 2147483648,
  memory_pct: 63,
  orders: 1250,
  queue_depth: 0,
  refunds: -4,
  revenue: 98765.43,
  sessions: 48213,
  signups: 12,
  storage_objects: 4200000,
  uptime_percent: 99.98,
  visits: 999999,
};

/** What an axis label of each unit looks like, whole. */
const LABEL = {
  bytes: /^-?[\d.,]+ (B|KB|MB|GB|TB|PB)$/,
  percent: /^-?[\d.,]+%$/,
  count: /^-?[\d.,]+[KMBT]?$/,
};

/**
 * Samples from 50 to 10 minutes ago, written straight into the hub's
 * SQLite file: the ingest API only ever records the current minute, and a
 * test cannot wait an hour. The rows are what an ingest in those minutes
 * would have written (minute text as diesel writes it, UTC).
 */
function seedPast(hub, userId, metrics) {
  const script = `
import datetime, json, sqlite3, sys
path, user, metrics = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
rows = [(user, name, (now - datetime.timedelta(minutes=ago)).strftime("%Y-%m-%d %H:%M:%S"),
         value * (1 - ago / 100))
        for name, value in metrics.items() for ago in (50, 40, 30, 20, 10)]
db = sqlite3.connect(path, timeout=10)
db.executemany("INSERT INTO hub_metric_sample (user_id, name, minute, value) VALUES (?, ?, ?, ?)", rows)
db.commit()
`;
  const out = spawnSync("python3", ["-c", script, join(hub.dir, "hub.sqlite3"), String(userId), JSON.stringify(metrics)],
    { encoding: "utf8" });
  assert.equal(out.status, 0, out.stderr);
}

/** Every chart: its metric, unit, axis labels, the y axis's width and the legend. */
function charts(page) {
  return page.$$eval("#chart figure.metric-chart", (figures) => figures.map((f) => {
    const axes = f.querySelectorAll(".u-axis");
    const ctx = document.createElement("canvas").getContext("2d");
    // uPlot's own axis font.
    ctx.font = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif';
    const yTicks = (f.dataset.yTicks ?? "").split(" | ").filter(Boolean);
    return {
      metric: f.dataset.metric,
      unit: f.dataset.unit,
      xTicks: (f.dataset.xTicks ?? "").split(" | ").filter(Boolean),
      yTicks,
      yAxisWidth: axes[1]?.getBoundingClientRect().width ?? 0,
      widestY: Math.max(0, ...yTicks.map((t) => ctx.measureText(t).width)),
      colour: getComputedStyle(f.querySelector(".u-series:nth-child(2) .u-marker")).borderColor,
      legend: [...f.querySelectorAll(".u-legend .u-value")].map((v) => v.textContent),
      canvas: f.querySelector("canvas") !== null,
    };
  }));
}

/** Every tile's metric, value, colour, and whether its text overflows it. */
function tiles(page, list) {
  return page.$$eval(`${list} .tile`, (items) => items.map((t) => ({
    metric: t.dataset.metric,
    value: t.querySelector(".tile-value").textContent,
    note: t.querySelector(".tile-note").textContent,
    colour: getComputedStyle(t).borderTopColor,
    changed: t.classList.contains("changed"),
    overflows: [t, ...t.children].some((e) => e.scrollWidth > e.clientWidth),
  })));
}

async function allCharts(page) {
  await page.waitForFunction((n) => document.querySelectorAll("#chart figure canvas").length === n,
    Object.keys(METRICS).length, { timeout: WAIT });
}

describe("the dashboard with metrics", () => {
  const suite = serveSuite([["dana", PASSWORD], ["erin", PASSWORD], ["sam", PASSWORD, { staff: true }]]);

  test("with no data the dashboard says how data arrives and draws no axes", async () => {
    const { hub, browser, ids: users } = suite;
    for (const options of [{}, { viewport: { width: 375, height: 740 }, colorScheme: "dark" }]) {
      const context = await browser.newContext(options);
      const page = await open(context, hub, "/dashboard.html");
      await signIn(page, "dana", PASSWORD);
      await connected(page);
      await page.locator("#empty").waitFor({ state: "visible", timeout: WAIT });
      assert.match(await page.textContent("#empty"), /POST \/api\/analytics\/events/);
      assert.match(await page.textContent("#empty"), /X-Hub-Ingest-Key/);
      assert.equal(await page.isVisible("#metrics"), false);
      assert.equal(await page.locator("#chart canvas, .uplot").count(), 0, "no chart without data");
      await fitsWidth(page);
      await accessible(page, `the empty dashboard at ${options.viewport?.width ?? 1280} px`);
      await screenshot(page, `dashboard-empty-${options.viewport?.width ?? 1280}`);
      checkPage(page);
      await context.close();
    }
  });

  test("twenty metrics: a chart each in its unit, tiles that fit, a colour each, the hour again after a reload", async () => {
    const { hub, browser, ids: users } = suite;
    const names = Object.keys(METRICS);
    await hub.ingest(names.map((metric) => ({ user_id: users.dana, metric, value: METRICS[metric], op: "set" })));
    seedPast(hub, users.dana, METRICS);

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await open(context, hub, "/dashboard.html");
    await signIn(page, "dana", PASSWORD);
    await connected(page);
    await allCharts(page);
    assert.equal(await page.isVisible("#empty"), false);

    const shown = Object.fromEntries((await tiles(page, "#tiles")).map((t) => [t.metric, t]));
    assert.deepEqual(Object.keys(shown), names);
    assert.equal(shown.bandwidth_bytes.value, "148 MB");
    assert.equal(shown.disk_bytes.value, "50 GB");
    assert.equal(shown.memory_bytes.value, "2 GB");
    assert.equal(shown.cpu_pct.value, "42%");
    assert.equal(shown.uptime_percent.value, "99.98%");
    assert.equal(shown.api_requests.value, "123M");
    assert.equal(shown.orders.value, "1,250");
    assert.equal(shown.refunds.value, "-4");
    assert.deepEqual(Object.values(shown).filter((t) => t.changed), [], "a snapshot marks no tile");
    assert.equal(new Set(Object.values(shown).map((t) => t.colour)).size, names.length, "a colour per metric");

    const drawn = await charts(page);
    assert.deepEqual(drawn.map((c) => c.metric), names);
    for (const chart of drawn) {
      const what = `${chart.metric}: x ${chart.xTicks.join(", ")}; y ${chart.yTicks.join(", ")}`;
      assert.ok(chart.canvas, what);
      assert.ok(chart.xTicks.length >= 2, what);
      for (const tick of chart.xTicks) assert.match(tick, /^\d{2}:\d{2}$/, what);
      assert.ok(chart.yTicks.length >= 2, what);
      for (const tick of chart.yTicks) assert.match(tick, LABEL[chart.unit], what);
      assert.ok(chart.widestY + 15 <= chart.yAxisWidth + 0.5, `${what}: ${chart.widestY} px of label in ${chart.yAxisWidth} px of axis`);
      assert.deepEqual(chart.legend, ["now", shown[chart.metric].value], `${chart.metric}'s legend`);
      assert.equal(chart.colour, shown[chart.metric].colour, `${chart.metric}'s tile and chart share a colour`);
    }
    const byName = Object.fromEntries(drawn.map((c) => [c.metric, c]));
    assert.equal(byName.cpu_pct.unit, "percent");
    assert.ok(byName.cpu_pct.yTicks.includes("100%"), byName.cpu_pct.yTicks.join(", "));
    assert.ok(byName.bandwidth_bytes.yTicks.some((t) => t.endsWith(" MB")), byName.bandwidth_bytes.yTicks.join(", "));
    assert.equal(new Set(drawn.map((c) => c.colour)).size, names.length, "a colour per chart");
    // The series' 59 past minutes, then the value now.
    const points = async () => Number(await page.getAttribute("#chart", "data-points"));
    assert.ok((await points()) >= 60, `${await points()} points`);
    assert.match(await page.textContent("#chart-range"), /^From \d{2}:\d{2} to \d{2}:\d{2}, then live/);
    await accessible(page, "the dashboard with twenty metrics");
    await screenshot(page, "dashboard-metrics");

    // One change marks its tile only, for a moment.
    await hub.ingest([{ user_id: users.dana, metric: "cpu_pct", value: 55, op: "set" }]);
    await page.locator('#tiles [data-metric="cpu_pct"] .tile-value').filter({ hasText: /^55%$/ }).waitFor({ timeout: WAIT });
    const marked = (await tiles(page, "#tiles")).filter((t) => t.changed).map((t) => t.metric);
    assert.deepEqual(marked, ["cpu_pct"]);
    await page.waitForFunction(() => document.querySelectorAll("#tiles .tile.changed").length === 0, null, { timeout: WAIT });

    // A phone: one column, nothing wider than the screen.
    await page.setViewportSize({ width: 375, height: 740 });
    await page.waitForFunction(() => [...document.querySelectorAll("#chart .uplot")]
      .every((u) => u.getBoundingClientRect().right <= window.innerWidth), null, { timeout: WAIT });
    await fitsWidth(page);
    assert.deepEqual((await tiles(page, "#tiles")).filter((t) => t.overflows).map((t) => t.metric), [], "tiles that overflow at 375 px");
    await accessible(page, "the dashboard with twenty metrics at 375 px");
    await screenshot(page, "dashboard-metrics-phone");
    await page.setViewportSize({ width: 1280, height: 900 });
    assert.deepEqual((await tiles(page, "#tiles")).filter((t) => t.overflows).map((t) => t.metric), [], "tiles that overflow at 1280 px");

    // A reload starts from the hour again, the change in it.
    await page.reload();
    await connected(page);
    await allCharts(page);
    assert.ok((await points()) >= 60, `${await points()} points after a reload`);
    const again = Object.fromEntries((await charts(page)).map((c) => [c.metric, c]));
    assert.deepEqual(again.cpu_pct.legend, ["now", "55%"]);
    checkPage(page);
    await context.close();
  });

  test("the staff console shows a percentage as the average over its customers, labelled", async () => {
    const { hub, browser, ids: users } = suite;
    await hub.ingest([
      { user_id: users.dana, metric: "load_pct", value: 40, op: "set" },
      { user_id: users.erin, metric: "load_pct", value: 70, op: "set" },
      { user_id: users.erin, metric: "orders", value: 50, op: "set" },
    ]);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await open(context, hub, "/staff.html");
    await signIn(page, "sam", PASSWORD);
    await page.locator("#console").waitFor({ state: "visible", timeout: WAIT });
    await connected(page);
    const load = page.locator('#global [data-metric="load_pct"]');
    await load.locator(".tile-value").filter({ hasText: /^55%$/ }).waitFor({ timeout: WAIT });
    assert.equal(await load.locator(".tile-note").textContent(), "average of 2 customers");
    const orders = page.locator('#global [data-metric="orders"]');
    assert.equal(await orders.locator(".tile-value").textContent(), "1,300");
    assert.equal(await orders.locator(".tile-note").textContent(), "total of 2 customers");
    assert.equal(await page.locator('#global [data-metric="cpu_pct"] .tile-note').textContent(), "average of 1 customer");

    // A customer's new value moves the average live.
    await hub.ingest([{ user_id: users.erin, metric: "load_pct", value: 100, op: "set" }]);
    await load.locator(".tile-value").filter({ hasText: /^70%$/ }).waitFor({ timeout: WAIT });
    assert.deepEqual((await tiles(page, "#global")).filter((t) => t.overflows).map((t) => t.metric), []);
    await accessible(page, "the staff console with metrics");
    await screenshot(page, "staff-metrics");
    checkPage(page);
    await context.close();
  });
});
