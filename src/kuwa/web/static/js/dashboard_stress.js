// Stress runs: while a run is queued or running, poll /app/dashboard/stress and redraw the
// table; the chart compares the finished runs (throughput and latency), oldest first.
import { api } from "./api.js";
import { h } from "./dom.js";
import { loadStrings, t } from "./i18n.js";
import { Chart, axisSize } from "./dashboard_chart.js";

const POLL_MS = 2000;
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
let runs = JSON.parse(document.getElementById("dash-runs").textContent);
let throughput = null;
let latency = null;

const fixed = (v, digits) => (v === null || v === undefined ? "—" : Number(v).toFixed(digits));
const msOf = (v, digits = 0) => (v === null || v === undefined ? "—" : `${(v * 1000).toFixed(digits)} ms`);

function row(r) {
  const res = r.result;
  const p = r.progress;
  const counts = res
    ? `${res.completed} / ${res.failed}`
    : p ? `${p.done} / ${p.failed} (${p.total})` : "—";
  const stop = ["queued", "running"].includes(r.status)
    ? h("form", { method: "post", action: "/dashboard/stress/stop", class: "inline" },
        h("input", { type: "hidden", name: "csrftoken", value: csrf }),
        h("input", { type: "hidden", name: "run", value: r.id }),
        h("button", { class: "secondary", type: "submit", text: t("dash_stop") }))
    : "";
  const cells = [
    h("td", { class: "nowrap" }, h("code", { text: r.id }), h("br"), h("span", { class: "small", text: r.user })),
    h("td", {}, h("span", { class: "badge", text: r.status }),
      r.error ? [h("br"), h("span", { class: "small", text: r.error })] : null),
    h("td", { text: r.config.models.join(", ") }),
    h("td", { class: "num", text: r.config.concurrency }),
    h("td", { class: "num", text: counts }),
    h("td", { class: "num", text: res ? fixed(res.request_throughput, 2) : "—" }),
    h("td", { class: "num", text: res ? fixed(res.output_tokens_per_s, 1) : "—" }),
    h("td", { class: "num", text: res ? msOf(res.ttft.p50) : "—" }),
    h("td", { class: "num", text: res ? msOf(res.ttft.p99) : "—" }),
    h("td", { class: "num", text: res ? msOf(res.tpot.p50, 1) : "—" }),
    h("td", {}, stop),
  ];
  return h("tr", { dataset: { run: r.id, status: r.status } }, cells);
}

function renderTable() {
  const body = document.getElementById("dash-runs-body");
  if (!runs.length) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 11, text: t("dash_no_runs") })));
    return;
  }
  body.replaceChildren(...runs.map(row));
}

let done = []; // the finished runs, oldest first (the axes' callbacks read the latest)

function renderChart() {
  done = runs.filter((r) => r.result).reverse();
  const parent = document.getElementById("dash-stress-chart");
  parent.dataset.runs = String(done.length);
  if (!done.length) return;
  const xs = done.map((_, i) => i + 1);
  const label = (r) => `${r.id.slice(-4)} ×${r.config.concurrency}`;
  const axes = [
    {
      // One tick per run (every few runs when they would not fit), named by id and concurrency.
      splits: (u) => {
        const fit = Math.max(1, Math.floor(u.bbox.width / devicePixelRatio / 80));
        const step = Math.max(1, Math.ceil(done.length / fit));
        return done.map((_, i) => i + 1).filter((x) => (x - 1) % step === 0);
      },
      values: (u, ticks) => ticks.map((i) => (done[i - 1] ? label(done[i - 1]) : "")),
    },
    { size: axisSize },
  ];
  const opts = { scales: { x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] } }, axes };
  const points = { points: { show: true, size: 7 } };
  throughput ||= new Chart(parent, t("dash_chart_throughput"), { testid: "chart-throughput", opts });
  latency ||= new Chart(parent, t("dash_chart_latency"), { testid: "chart-latency", opts });
  throughput.update(
    [{ label: t("dash_req_per_s"), extra: points }, { label: t("dash_tok_per_s"), extra: points }],
    [xs, done.map((r) => r.result.request_throughput), done.map((r) => r.result.output_tokens_per_s)],
  );
  latency.update(
    [{ label: "TTFT p50 (ms)", extra: points }, { label: "TTFT p99 (ms)", extra: points },
     { label: "TPOT p50 (ms)", extra: points }],
    [xs, ...["ttft.p50", "ttft.p99", "tpot.p50"].map((path) => {
      const [a, b] = path.split(".");
      return done.map((r) => r.result[a][b] * 1000);
    })],
  );
}

async function poll() {
  if (runs.some((r) => ["queued", "running"].includes(r.status))) {
    try {
      runs = (await api.get("/app/dashboard/stress")).runs;
      renderTable();
      renderChart();
    } catch {
      // try again at the next tick
    }
  }
  setTimeout(poll, POLL_MS);
}

await loadStrings(document.documentElement.lang || "en");
renderChart();
setTimeout(poll, POLL_MS);
