// The dashboard's live overview: polls /app/dashboard/overview every two seconds and
// /app/dashboard/series for the last hour's charts (docs/dashboard.md). Text goes in through
// textContent only (dom.js), so model names and hosts never run as markup.
import { api } from "./api.js";
import { h } from "./dom.js";
import { loadStrings, t } from "./i18n.js";
import { Chart } from "./dashboard_chart.js";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

export function ms(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  return `${seconds.toFixed(2)} s`;
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function num(value, digits = 0) {
  return Number(value || 0).toLocaleString(undefined, {
    maximumFractionDigits: digits,
    minimumFractionDigits: 0,
  });
}

function percent(rate) {
  return `${(rate * 100).toFixed(rate && rate < 0.1 ? 1 : 0)} %`;
}

function badge(state) {
  const kind = { ready: "live", leader: "live", dead: "off", draining: "warn", standby: "" }[state];
  return h("span", { class: `badge ${kind || ""}`, text: t(`dash_state_${state}`) });
}

function table(el, headers, rows, empty) {
  const head = h("thead", {}, h("tr", {}, headers.map(([label, cls]) => h("th", { class: cls, text: label }))));
  const body = h("tbody");
  if (!rows.length) {
    body.append(h("tr", {}, h("td", { colspan: headers.length, text: empty })));
  }
  for (const row of rows) {
    body.append(
      h("tr", { dataset: row.data || {} },
        row.cells.map((cell, i) => h("td", { class: headers[i][1] }, cell))),
    );
  }
  el.replaceChildren(head, body);
}

function card(label, value, note, testid) {
  return h("div", { class: "dash-card", "data-testid": testid },
    h("span", { class: "dash-card-label", text: label }),
    h("span", { class: "dash-card-value", text: value }),
    note ? h("span", { class: "dash-card-note", text: note }) : null);
}

function renderCards(data) {
  const sum = (key) => data.models.reduce((n, m) => n + (m[key] || 0), 0);
  const ready = data.executors.filter((e) => e.state === "ready").length;
  const oldest = Math.max(0, ...data.models.map((m) => m.oldest_wait));
  const leader = data.kernels.list.find((k) => k.role === "leader");
  const standbys = data.kernels.list.filter((k) => k.role === "standby").length;
  $("dash-cards").replaceChildren(
    card(t("dash_waiting"), num(sum("waiting")), oldest ? t("dash_oldest", { age: age(oldest) }) : "", "card-waiting"),
    card(t("dash_running"), num(sum("running")), "", "card-running"),
    card(t("dash_tokens_per_s"), num(sum("tokens_per_s"), 1), "", "card-tokens"),
    card(t("dash_requests_per_min"), num(sum("requests_per_min"), 1), "", "card-rpm"),
    card(t("dash_executors"), `${ready} / ${data.executors.length}`, t("dash_ready_of_all"), "card-executors"),
    card(t("dash_kernel"), leader ? leader.host || leader.id : t("dash_none"),
      t("dash_standbys", { n: standbys }), "card-kernel"),
    card(t("dash_redis"), data.redis.used_memory_human,
      t("dash_clients", { n: data.redis.connected_clients }), "card-redis"),
  );
}

function renderModels(data) {
  table($("dash-models"), [
    [t("dash_model"), ""], [t("dash_waiting"), "num"], [t("dash_oldest_wait"), "num"],
    [t("dash_running"), "num"], [t("dash_executors_rd"), "num"], [t("dash_tokens_per_s"), "num"],
    [t("dash_requests_per_min"), "num"], ["TTFT p50 / p95", "num"], ["TPOT p50 / p95", "num"],
    [t("dash_error_rate"), "num"],
  ], data.models.map((m) => ({
    data: { model: m.code },
    cells: [
      h("code", { text: m.code }),
      num(m.waiting),
      m.waiting ? age(m.oldest_wait) : "—",
      num(m.running),
      `${m.executors_ready} / ${m.executors_draining}`,
      num(m.tokens_per_s, 1),
      num(m.requests_per_min, 1),
      `${ms(m.ttft_p50)} / ${ms(m.ttft_p95)}`,
      `${ms(m.tpot_p50)} / ${ms(m.tpot_p95)}`,
      h("span", { class: m.error_rate > 0.05 ? "dash-bad" : "", text: percent(m.error_rate) }),
    ],
  })), t("dash_no_models"));
}

function renderExecutors(data) {
  table($("dash-executors"), [
    [t("dash_executor"), ""], [t("dash_host"), ""], [t("dash_backend"), ""], [t("dash_model"), ""],
    [t("dash_slots"), "num"], [t("dash_tokens_per_s"), "num"], [t("dash_heartbeat"), "num"],
    [t("dash_state"), ""],
  ], data.executors.map((e) => ({
    data: { executor: e.id },
    cells: [
      h("code", { text: e.id }),
      e.host,
      e.backend,
      h("span", {}, e.model, h("br"), h("span", { class: "small", text: e.codes.join(", ") })),
      `${e.used} / ${e.slots}`,
      num(e.tokens_per_s, 1),
      age(e.heartbeat_age),
      badge(e.state),
    ],
  })), t("dash_no_executors"));
}

function renderKernels(data) {
  table($("dash-kernels"), [
    [t("dash_kernel"), ""], [t("dash_host"), ""], ["PID", "num"], [t("dash_heartbeat"), "num"],
    [t("dash_role"), ""],
  ], data.kernels.list.map((k) => ({
    cells: [h("code", { text: k.id }), k.host || "—", k.pid || "—", age(k.heartbeat_age), badge(k.role)],
  })), t("dash_no_kernels"));
}

// --- charts -------------------------------------------------------------------------------
// A latency exists only for samples in which some job finished: with a few jobs an hour
// those samples stand alone, and a line drawn only between neighbours drew next to nothing.
// Its chart joins them across the gaps and marks each.
const SPARSE = { spanGaps: true, points: { show: true, size: 5 } };
const CHARTS = [
  ["waiting", "dash_chart_queue", (v) => v],
  ["tokens_per_s", "dash_chart_tokens", (v) => v],
  ["ttft_p95", "dash_chart_ttft", (v) => (v === null || v === undefined ? null : v * 1000), SPARSE],
  ["errors", "dash_chart_errors", (v) => v],
];
const charts = {};

function renderSeries(data) {
  const models = Object.keys(data.models).sort();
  const times = [...new Set(models.flatMap((m) => data.models[m].t))].sort((a, b) => a - b);
  for (const [key, title] of CHARTS) {
    charts[key] ||= new Chart($("dash-charts"), t(title), { testid: `chart-${key}` });
  }
  for (const [key, , scale, extra] of CHARTS) {
    const series = models.map((m) => ({ label: m, extra }));
    const columns = models.map((m) => {
      const col = data.models[m];
      const at = new Map(col.t.map((x, i) => [x, scale(col[key][i])]));
      return times.map((x) => (at.has(x) ? at.get(x) : null));
    });
    charts[key].update(series, [times, ...columns]);
  }
  $("dash-charts").dataset.samples = String(times.length);
}

// --- polling ------------------------------------------------------------------------------
let seriesEvery = 5000;
let lastSeries = 0;

async function poll() {
  try {
    const data = await api.get("/app/dashboard/overview");
    renderCards(data);
    renderModels(data);
    renderExecutors(data);
    renderKernels(data);
    seriesEvery = Math.max(data.interval * 1000, 2000);
    if (Date.now() - lastSeries >= seriesEvery) {
      lastSeries = Date.now();
      renderSeries(await api.get("/app/dashboard/series?minutes=60"));
    }
    const status = $("dash-status");
    status.textContent = t("dash_updated", { time: new Date(data.now * 1000).toLocaleTimeString() });
    status.classList.remove("dash-bad");
  } catch (err) {
    const status = $("dash-status");
    status.textContent = err.message || String(err);
    status.classList.add("dash-bad");
  }
}

async function loop() {
  if (!document.hidden) await poll();
  setTimeout(loop, POLL_MS);
}

await loadStrings(document.documentElement.lang || "en");
loop();
