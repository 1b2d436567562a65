// Metric tiles and a small chart per metric, fed by analytics frames: the
// dashboard shows the user's own metrics (each chart starting with the last
// hour the snapshot's series carries, then live), the staff console the
// totals over all users as tiles, averaged where a sum means nothing.

import uPlot from "./vendor/uplot/uPlot.esm.js";
import { el } from "./shell.js";

/** Seconds a chart shows: the hour the hub's series covers. */
const SPAN_SECS = 3600;
/** Points a chart keeps at most, should updates come faster than once a second. */
const MAX_POINTS = SPAN_SECS + 60;
/** How long a tile whose value changed stays marked. */
const CHANGED_MS = 2000;
const CHART_HEIGHT = 150;
/** Values in view up to which a line also shows them as dots. */
const SPARSE_POINTS = 20;

/** How a metric's values read, from how its name ends: "bytes", "percent" or "count". */
function unitOf(name) {
  if (/_bytes$/i.test(name)) return "bytes";
  if (/_(pct|percent)$/i.test(name)) return "percent";
  return "count";
}

const BYTE_UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];
const decimals = [0, 1, 2].map((n) => new Intl.NumberFormat(undefined, { maximumFractionDigits: n }));
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumSignificantDigits: 3 });
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });

/** About three significant digits: a tile, a legend or an axis has room for no more. */
function short(value) {
  const size = Math.abs(value);
  return decimals[size >= 100 ? 0 : size >= 10 ? 1 : 2].format(value);
}

/** A value with its unit, short: "148 MB", "99.98%", "1,234", "1.55M". */
function formatValue(value, unit) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  // 99.98% is not 100%: two decimals, whatever the size.
  if (unit === "percent") return `${decimals[2].format(value)}%`;
  if (unit === "bytes") {
    let scaled = value;
    let power = 0;
    while (Math.abs(scaled) >= 1024 && power < BYTE_UNITS.length - 1) {
      scaled /= 1024;
      power += 1;
    }
    return `${short(scaled)} ${BYTE_UNITS[power]}`;
  }
  const size = Math.abs(value);
  if (size >= 1e6) return compact.format(value);
  return decimals[size >= 1000 ? 0 : 2].format(value);
}

/** A time in seconds as HH:MM, in the reader's time zone. */
function hhmm(secs) {
  return clock.format(secs * 1000);
}

/** Steps for a bytes axis: 1, 2 or 5 times a power of ten of B, KB, MB… */
const BYTE_STEPS = BYTE_UNITS.flatMap((_, power) =>
  [1, 2, 5, 10, 20, 50, 100, 200, 500].map((m) => m * 1024 ** power));

/**
 * A colour per metric, in the order metrics first appear: hues a golden
 * angle apart, so that any number of them differ and neighbours most;
 * darker on a light page, lighter on a dark one.
 */
function colour(index, dark) {
  const hue = Math.round((215 + index * 137.508) % 360);
  return dark ? `hsl(${hue}, 75%, 68%)` : `hsl(${hue}, 80%, 34%)`;
}

/** A name that may wrap after each "_" or ".", rather than anywhere. */
function breakable(name) {
  return name.split(/(?<=[_.])/).flatMap((part, i) => (i ? [document.createElement("wbr"), part] : [part]));
}

const darkTheme = matchMedia("(prefers-color-scheme: dark)");

function themeColour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** A y axis only as wide as its longest label, so that none is cut. */
function fitLabels(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size;
  const longest = (values ?? []).reduce((a, v) => (v.length > a.length ? v : a), "");
  u.ctx.font = axis.font[0];
  return Math.ceil(axis.ticks.size + axis.gap + u.ctx.measureText(longest).width / devicePixelRatio);
}

/** Dots on a line of only a few values: one value alone draws no line. */
function fewPoints(u, seriesIdx, first, last) {
  let values = 0;
  for (let i = first; i <= last && values <= SPARSE_POINTS; i++) {
    if (u.data[seriesIdx][i] !== null) values += 1;
  }
  return values <= SPARSE_POINTS;
}

/** The y range of a unit: from 0 (or below), percentages to 100 at least. */
function yRange(unit) {
  return (u, min, max) => {
    const low = Math.min(0, min ?? 0);
    const high = Math.max(unit === "percent" ? 100 : 0, max ?? 0);
    if (unit === "percent") return [low, high];
    return [low, high > low ? high + (high - low) * 0.1 : low + 1];
  };
}

/**
 * Tiles in `tiles` (a <ul>); with `charts` (a container), a chart per
 * metric in it and the span they show in `range`. `empty` is shown once a
 * snapshot holds no metric, `panel` (what shows metrics) once it holds some.
 */
export class MetricsView {
  #values = new Map();
  #users = new Map();
  #tiles = new Map();
  #marks = new Map();
  #colours = new Map();
  /** Seconds, shared by every chart, and each metric's values at them. */
  #times = [];
  #lines = new Map();
  #charts = new Map();
  #resized = new ResizeObserver(() => this.#resize());

  constructor({ tiles, charts = null, range = null, empty = null, panel = null }) {
    Object.assign(this, { tiles, charts, range, empty, panel });
    darkTheme.addEventListener("change", () => this.#rebuild());
  }

  /** A snapshot replaces every metric and the charts' past; an update changes some. */
  apply(frame) {
    const snapshot = frame.type === "analytics.snapshot";
    const before = new Map(this.#values);
    if (snapshot) {
      this.#values.clear();
      this.#users.clear();
    }
    for (const [name, value] of Object.entries(frame.metrics)) this.#values.set(name, value);
    for (const [name, users] of Object.entries(frame.users ?? {})) this.#users.set(name, users);
    // Tiles whose value moved; a metric new in an update is news too, but
    // nothing in a first snapshot is.
    const changed = Object.entries(frame.metrics)
      .filter(([name, value]) => before.get(name) !== value && (before.has(name) || !snapshot))
      .map(([name]) => name);
    this.#renderTiles(changed);
    if (this.charts) {
      const at = Date.parse(frame.at) / 1000;
      if (snapshot) this.#history(frame.series);
      this.#append(at);
      this.#renderCharts();
    }
    if (this.empty) this.empty.hidden = this.#values.size > 0;
    if (this.panel) this.panel.hidden = this.#values.size === 0;
  }

  clear() {
    this.#values.clear();
    this.#users.clear();
    this.#history(null);
    this.#renderTiles([]);
    if (this.charts) this.#renderCharts();
    if (this.empty) this.empty.hidden = true;
    if (this.panel) this.panel.hidden = true;
  }

  #colourOf(name) {
    if (!this.#colours.has(name)) this.#colours.set(name, this.#colours.size);
    return colour(this.#colours.get(name), darkTheme.matches);
  }

  /** What a tile shows: the value, or for totals of a percentage their average. */
  #shown(name) {
    const unit = unitOf(name);
    const value = this.#values.get(name);
    const users = this.#users.get(name);
    if (users === undefined) return { value: formatValue(value, unit), note: null };
    const people = users === 1 ? "1 customer" : `${users} customers`;
    if (unit === "percent" && users > 0) {
      return { value: formatValue(value / users, unit), note: `average of ${people}` };
    }
    return { value: formatValue(value, unit), note: `total of ${people}` };
  }

  #renderTiles(changed) {
    const names = [...this.#values.keys()].sort();
    for (const [name, tile] of this.#tiles) {
      if (!this.#values.has(name)) {
        clearTimeout(this.#marks.get(name));
        this.#marks.delete(name);
        this.#tiles.delete(name);
        tile.remove();
      }
    }
    for (const name of names) {
      let tile = this.#tiles.get(name);
      if (!tile) {
        tile = el("li", { class: "tile", "data-metric": name },
          el("span", { class: "tile-name" }, ...breakable(name)),
          el("span", { class: "tile-value" }),
          el("span", { class: "tile-note" }));
        if (this.charts) tile.style.setProperty("--metric-colour", this.#colourOf(name));
        this.#tiles.set(name, tile);
      }
      const { value, note } = this.#shown(name);
      tile.querySelector(".tile-value").textContent = value;
      const noteEl = tile.querySelector(".tile-note");
      noteEl.textContent = note ?? "";
      noteEl.hidden = !note;
    }
    this.tiles.replaceChildren(...names.map((name) => this.#tiles.get(name)));
    for (const name of changed) this.#mark(name);
  }

  /** Marks a tile for a moment; a value that changes again keeps it marked. */
  #mark(name) {
    const tile = this.#tiles.get(name);
    clearTimeout(this.#marks.get(name));
    tile.classList.add("changed");
    this.#marks.set(name, setTimeout(() => {
      tile.classList.remove("changed");
      this.#marks.delete(name);
    }, CHANGED_MS));
  }

  /**
   * The charts' past from a snapshot's series: point i of a metric is its
   * value at the end of minute i; the last one, the current minute's, is
   * the snapshot's own value, appended next with its time.
   */
  #history(series) {
    this.#times = [];
    this.#lines = new Map();
    if (!series) return;
    const from = Date.parse(series.from) / 1000;
    const lines = Object.entries(series.points);
    const count = Math.max(0, (lines[0]?.[1].length ?? 0) - 1);
    for (let i = 1; i <= count; i++) this.#times.push(from + i * series.step);
    for (const [name, points] of lines) this.#lines.set(name, points.slice(0, count));
  }

  /** Every metric's value now, at `at`; what is older than the span goes. */
  #append(at) {
    // The time axis only goes forward, whatever the clocks.
    const t = Math.max(at, this.#times.at(-1) ?? at);
    for (const name of this.#values.keys()) {
      if (!this.#lines.has(name)) this.#lines.set(name, this.#times.map(() => null));
    }
    this.#times.push(t);
    for (const [name, line] of this.#lines) line.push(this.#values.get(name) ?? null);
    let old = 0;
    while (this.#times[old] < t - SPAN_SECS || this.#times.length - old > MAX_POINTS) old += 1;
    if (old > 0) {
      this.#times.splice(0, old);
      for (const line of this.#lines.values()) line.splice(0, old);
    }
  }

  #renderCharts() {
    for (const name of this.#charts.keys()) {
      if (!this.#values.has(name)) this.#dropChart(name);
    }
    const names = [...this.#values.keys()].sort();
    const added = names.filter((name) => !this.#charts.has(name));
    for (const name of added) this.#charts.set(name, this.#figure(name));
    // In place first, so that a new chart is drawn as wide as its place.
    this.charts.replaceChildren(...names.map((name) => this.#charts.get(name).figure));
    for (const name of names) {
      const data = [this.#times, this.#lines.get(name)];
      const chart = this.#charts.get(name);
      if (chart.plot) chart.plot.setData(data);
      else chart.plot = this.#plot(name, chart, data);
    }
    this.charts.dataset.points = String(this.#times.length);
    if (this.range) {
      this.range.textContent = this.#times.length
        ? `From ${hhmm(this.#times[0])} to ${hhmm(this.#times.at(-1))}, then live as events arrive.`
        : "";
    }
  }

  #dropChart(name) {
    const { figure, plotEl, plot } = this.#charts.get(name);
    this.#resized.unobserve(plotEl);
    plot.destroy();
    figure.remove();
    this.#charts.delete(name);
  }

  #figure(name) {
    const plotEl = el("div", { class: "metric-plot" });
    const figure = el("figure", { class: "metric-chart", "data-metric": name, "data-unit": unitOf(name) }, plotEl);
    return { figure, plotEl, plot: null };
  }

  /**
   * One metric's chart, in its unit. The axes' labels are also written on
   * the figure (`data-x-ticks`, `data-y-ticks`): the canvas cannot be read.
   */
  #plot(name, { figure, plotEl }, data) {
    const unit = unitOf(name);
    const labels = (key, texts) => {
      figure.dataset[key] = texts.join(" | ");
      return texts;
    };
    const ink = themeColour("--ink");
    const grid = themeColour("--line");
    const axis = { stroke: ink, grid: { stroke: grid }, ticks: { stroke: grid } };
    const latest = (u) => u.data[1].findLast((v) => v !== null);
    const plot = new uPlot({
      width: this.#width(plotEl),
      height: CHART_HEIGHT,
      // Pointing at a time in one chart shows it in all of them.
      cursor: { sync: { key: "metrics" } },
      scales: {
        x: { time: true, range: (u, min, max) => [max - SPAN_SECS, max] },
        y: { range: yRange(unit) },
      },
      series: [
        { label: "Time", value: (u, t) => (t === null ? "now" : hhmm(t)) },
        {
          label: name,
          stroke: this.#colourOf(name),
          width: 2,
          spanGaps: true,
          points: { show: fewPoints },
          // Off the chart, the legend shows the value now.
          value: (u, v) => formatValue(v ?? latest(u), unit),
        },
      ],
      axes: [
        { ...axis, space: 70, values: (u, ticks) => labels("xTicks", ticks.map(hhmm)) },
        {
          ...axis,
          size: fitLabels,
          incrs: unit === "bytes" ? BYTE_STEPS : undefined,
          values: (u, ticks) => labels("yTicks", ticks.map((v) => formatValue(v, unit))),
        },
      ],
    }, data, plotEl);
    this.#resized.observe(plotEl);
    return plot;
  }

  #width(plotEl) {
    return Math.max(200, plotEl.clientWidth);
  }

  #resize() {
    for (const { plot, plotEl } of this.#charts.values()) {
      const width = this.#width(plotEl);
      if (plot && width !== plot.width) plot.setSize({ width, height: CHART_HEIGHT });
    }
  }

  /** Colours follow the theme: the charts are drawn again in the new one. */
  #rebuild() {
    for (const [name, tile] of this.#tiles) {
      if (this.charts) tile.style.setProperty("--metric-colour", this.#colourOf(name));
    }
    for (const name of this.#charts.keys()) this.#dropChart(name);
    if (this.charts && this.#values.size) this.#renderCharts();
  }
}
