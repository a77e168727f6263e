// Charts for the dashboard pages: uPlot (/vendor/uPlot.iife.min.js, from npm) in cards whose
// width they follow (a ResizeObserver), so they fit a phone as well as a desktop.
import { h } from "./dom.js";

export const PALETTE = [
  "#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed",
  "#0891b2", "#db2777", "#65a30d", "#475569", "#ea580c",
];

export function color(i) {
  return PALETTE[i % PALETTE.length];
}

function widthOf(el) {
  return Math.max(Math.floor(el.getBoundingClientRect().width) - 2, 200);
}

/** Room for the longest label of a y axis (uPlot's default cuts "20,000"). */
export function axisSize(u, values) {
  const longest = Math.max(3, ...(values || []).map((v) => String(v).length));
  return longest * 7 + 18;
}

/** A titled chart card in ``parent``. ``series``: [{label, stroke?}], ``opts``: extra uPlot
 * options (axes, scales). ``update(data)`` redraws with new columns [xs, ys…]. */
export class Chart {
  constructor(parent, title, { height = 200, testid = "", opts = {} } = {}) {
    this.title = title;
    this.height = height;
    this.opts = opts;
    this.body = h("div", { class: "dash-chart-body" });
    this.card = h(
      "figure",
      { class: "dash-chart", "data-testid": testid || undefined },
      h("figcaption", { text: title }),
      this.body,
    );
    parent.append(this.card);
    this.plot = null;
    this.labels = "";
    this.width = 0;
    // Follow the card's width (the window, the grid reflowing as cards are added).
    new ResizeObserver(() => this.fit()).observe(this.body);
  }

  update(series, data) {
    if (!window.uPlot) return;
    const labels = series.map((s) => s.label).join("\u0000");
    if (this.plot && labels !== this.labels) {
      this.plot.destroy();
      this.plot = null;
    }
    this.labels = labels;
    if (!this.plot) {
      this.body.textContent = "";
      this.width = widthOf(this.body);
      const options = {
        width: this.width,
        height: this.height,
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
        series: [
          {},
          ...series.map((s, i) => ({
            label: s.label,
            stroke: s.stroke || color(i),
            width: 2,
            spanGaps: false,
            points: { show: false },
            ...(s.extra || {}),
          })),
        ],
        axes: [{}, { size: axisSize }],
        ...this.opts,
      };
      this.plot = new window.uPlot(options, data, this.body);
    } else {
      this.plot.setData(data);
    }
  }

  fit() {
    const width = widthOf(this.body);
    if (this.plot && width !== this.width) {
      this.width = width;
      this.plot.setSize({ width, height: this.height });
    }
  }
}
