// The statistics page's chart: requests, failures and output tokens per day, from the JSON
// the page embeds (the same figures as its tables).
import { loadStrings, t } from "./i18n.js";
import { Chart } from "./dashboard_chart.js";

await loadStrings(document.documentElement.lang || "en");
const days = JSON.parse(document.getElementById("dash-usage").textContent);
const names = Object.keys(days).sort();
const xs = names.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
const parent = document.getElementById("dash-usage-chart");
const bars = window.uPlot ? { paths: window.uPlot.paths.bars({ size: [0.7, 40] }) } : {};
const HALF_DAY = 43200; // room for the first and last bars
const opts = { scales: { x: { range: (u, min, max) => [min - HALF_DAY, max + HALF_DAY] } } };

new Chart(parent, t("dash_requests"), { testid: "chart-requests", opts }).update(
  [
    { label: t("dash_requests"), extra: { fill: "rgba(37,99,235,.35)", ...bars } },
    { label: t("dash_failed"), stroke: "#dc2626", extra: { fill: "rgba(220,38,38,.35)", ...bars } },
  ],
  [xs, names.map((d) => days[d].requests), names.map((d) => days[d].failed)],
);
new Chart(parent, t("dash_output_tokens"), { testid: "chart-tokens", opts }).update(
  [{ label: t("dash_output_tokens"), stroke: "#059669", extra: { fill: "rgba(5,150,105,.3)", ...bars } }],
  [xs, names.map((d) => days[d].completion_tokens)],
);
