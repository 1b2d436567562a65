// Metric tiles and a live chart, fed by analytics frames: the dashboard
// shows the user's own metrics, the staff console the global ones.

import uPlot from "./vendor/uplot/uPlot.esm.js";
import { el } from "./shell.js";

const KEEP_POINTS = 120;
const format = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

function themeColour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/**
 * Tiles in `tiles` (a <ul>) and, given `plot` (a <figure> holding a <div>
 * and a <figcaption>), a chart of every metric over time.
 */
export class MetricsView {
  #metrics = new Map();
  #times = [];
  #series = new Map();
  #chart = null;

  constructor(tiles, figure) {
    this.tiles = tiles;
    this.figure = figure;
    addEventListener("resize", () => this.#chart?.setSize(this.#size()));
  }

  /** A snapshot replaces every metric; an update changes some. */
  apply(frame) {
    if (frame.type === "analytics.snapshot") this.#metrics.clear();
    for (const [name, value] of Object.entries(frame.metrics)) this.#metrics.set(name, value);
    this.#renderTiles(new Set(Object.keys(frame.metrics)));
    if (this.figure) this.#plot(frame.at);
  }

  clear() {
    this.#metrics.clear();
    this.tiles.replaceChildren();
  }

  #renderTiles(changed) {
    const names = [...this.#metrics.keys()].sort();
    this.tiles.replaceChildren(...names.map((name) =>
      el("li", { class: changed.has(name) ? "tile changed" : "tile", "data-metric": name },
        el("span", { class: "tile-name", text: name }),
        el("span", { class: "tile-value", text: format.format(this.#metrics.get(name)) }))));
  }

  #size() {
    const width = Math.max(240, this.figure.clientWidth);
    return { width, height: Math.round(Math.min(320, width * 0.5)) };
  }

  #plot(at) {
    // The chart's time axis must only go forward.
    const t = Math.max((at ? Date.parse(at) : Date.now()) / 1000, this.#times.at(-1) ?? 0);
    // A metric seen for the first time had no value at the earlier points.
    for (const name of this.#metrics.keys()) {
      if (!this.#series.has(name)) this.#series.set(name, this.#times.map(() => null));
    }
    this.#times.push(t);
    for (const [name, values] of this.#series) {
      values.push(this.#metrics.get(name) ?? null);
    }
    if (this.#times.length > KEEP_POINTS) {
      this.#times.shift();
      for (const values of this.#series.values()) values.shift();
    }
    const data = [this.#times, ...this.#series.values()];
    // A new metric means a new series: the chart is built again.
    if (!this.#chart || this.#chart.series.length !== data.length) this.#build(data);
    else this.#chart.setData(data);
    this.figure.dataset.points = String(this.#times.length);
    this.figure.querySelector("figcaption").textContent =
      `${[...this.#series.keys()].join(", ")}: ${this.#times.length} points, last at ${new Date(t * 1000).toLocaleTimeString()}`;
  }

  #build(data) {
    this.#chart?.destroy();
    const ink = themeColour("--ink");
    const grid = themeColour("--line");
    const palette = ["--chart-1", "--chart-2", "--chart-3", "--chart-4"].map(themeColour);
    const axis = { stroke: ink, grid: { stroke: grid }, ticks: { stroke: grid } };
    this.#chart = new uPlot({
      ...this.#size(),
      series: [{}, ...[...this.#series.keys()].map((label, i) => ({
        label, stroke: palette[i % palette.length], width: 2, spanGaps: true,
      }))],
      axes: [axis, axis],
    }, data, this.figure.querySelector("div"));
  }
}
