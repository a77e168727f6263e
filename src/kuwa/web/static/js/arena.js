// The blinded arena: the Arena page (start a battle; the leaderboard with filters and a heat
// map) and, inside an arena room, the vote bar and the reveal. Before the vote the server
// names the two models only "arena:A" and "arena:B"; nothing here can know more.
import { api } from "./api.js";
import { avatar, h, icon, toast } from "./dom.js";
import { t } from "./i18n.js";

const SIDES = { "arena:A": "A", "arena:B": "B" };
const OUTCOMES = [
  ["a", "vote_a", "left"],
  ["b", "vote_b", "right"],
  ["tie", "vote_tie", "check"],
  ["bad", "vote_bad", "down"],
];
const NEW_CHAT = "Room_update_new_chat";
const EXPORT = "Dashboard_read_feedbacks";

export function isArenaPath(path = location.pathname) {
  return /^\/arena\/?$/.test(path);
}

/** A blinded side as a model for the room's columns ("Model A"), or null for a real code. */
export function arenaModel(code) {
  const side = SIDES[code];
  if (!side) return null;
  return {
    code,
    name: t("model_side", { side }),
    description: "",
    image: "",
    react_buttons: ["copy", "quote"],
    live: true,
    side,
  };
}

/** Draw a new pair and open the battle. */
export async function startBattle(app, button = null) {
  if (button) button.disabled = true;
  try {
    const room = await api.post("/app/arena");
    app.sidebar.load();
    app.navigate(`/rooms/${room.id}`, { room });
  } catch (err) {
    toast(err.message);
  } finally {
    if (button) button.disabled = false;
  }
}

// --- inside an arena room -----------------------------------------------------------------------
/** The strip above the composer: who may vote and how, or who was who after the vote. */
export class ArenaBar {
  constructor(view) {
    this.view = view;
    this.el = h("div", { class: "arena-bar", "data-testid": "arena-bar", hidden: true });
    this.key = "";
    this.voting = false;
  }

  state() {
    const room = this.view.room;
    if (!room?.arena) return "none";
    if (room.revealed) return `revealed:${room.vote}:${(room.models || []).join(",")}:${this.view.app.modelsLoaded}`;
    if (!this.view.isOwner) return "watching";
    const answers = [...this.view.msgs.values()].filter((m) => m.role === "assistant");
    const done = new Set(answers.filter((m) => m.status !== "running").map((m) => m.model));
    const running = answers.some((m) => m.status === "running");
    return !running && done.has("arena:A") && done.has("arena:B") ? "vote" : "wait";
  }

  render() {
    const key = `${this.state()}:${this.voting}`;
    if (key === this.key) return;
    this.key = key;
    const state = key.split(":")[0];
    this.el.hidden = state === "none";
    if (state === "none") return this.el.replaceChildren();
    if (state === "revealed") return this.el.replaceChildren(...this.reveal());
    if (state === "watching" || state === "wait") {
      return this.el.replaceChildren(
        icon("eye", 16),
        h("span", { class: "arena-note", text: t(state === "wait" ? "arena_wait" : "arena_watching") }),
      );
    }
    this.el.replaceChildren(
      h("span", { class: "arena-question", text: t("arena_question") }),
      h(
        "div",
        { class: "arena-votes", role: "group", "aria-label": t("arena_question") },
        OUTCOMES.map(([outcome, label, glyph]) =>
          h(
            "button",
            {
              type: "button",
              class: `vote-btn vote-${outcome}`,
              "data-testid": `vote-${outcome}`,
              disabled: this.voting,
              onclick: () => this.vote(outcome),
            },
            icon(glyph, 16),
            h("span", { text: t(label) }),
          ),
        ),
      ),
    );
  }

  reveal() {
    const room = this.view.room;
    const [a, b] = room.models || [];
    const who = (code, side) => {
      const m = this.view.model(code);
      return h(
        "span",
        { class: "arena-who", "data-testid": `revealed-${side}` },
        h("span", { class: "side-badge", text: side }),
        avatar(m.name, m.image, code, "xs"),
        h("strong", { text: m.name }),
      );
    };
    const votedFor = { a: "voted_a", b: "voted_b", tie: "voted_tie", bad: "voted_bad" }[room.vote];
    return [
      h("div", { class: "arena-reveal" }, who(a, "A"), h("span", { class: "muted", text: t("versus") }), who(b, "B")),
      votedFor ? h("span", { class: "arena-note muted", text: t(votedFor) }) : null,
      h(
        "div",
        { class: "arena-next" },
        this.view.app.can(NEW_CHAT)
          ? h(
              "button",
              {
                type: "button",
                class: "small-btn",
                "data-testid": "new-battle",
                onclick: (e) => startBattle(this.view.app, e.currentTarget),
              },
              icon("plus", 16),
              h("span", { text: t("new_battle") }),
            )
          : null,
        h("a", {
          class: "button secondary small-btn",
          href: "/arena",
          text: t("leaderboard"),
          onclick: (e) => {
            e.preventDefault();
            this.view.app.navigate("/arena");
          },
        }),
      ),
    ];
  }

  async vote(outcome) {
    this.voting = true;
    this.render();
    try {
      const room = await api.post(`/app/rooms/${this.view.id}/vote`, { outcome });
      toast(t("vote_thanks"), "ok", 4000);
      this.view.app.sidebar.load();
      // Reopen the room: every column, answer and the sidebar now name the real models.
      this.view.app.navigate(`/rooms/${this.view.id}`, { replace: true, room });
    } catch (err) {
      toast(err.message);
      this.voting = false;
      this.render();
    }
  }
}

// --- the Arena page ---------------------------------------------------------------------------
export class ArenaView {
  constructor(app) {
    this.app = app;
    this.filters = { since: "", until: "", language: "" };
    this.seq = 0;
  }

  mount(container) {
    this.app.setTitle(t("arena"));
    const blind = Boolean(this.app.config.blind);
    const start = this.app.can(NEW_CHAT)
      ? h(
          "button",
          {
            type: "button",
            class: "start",
            "data-testid": "start-battle",
            onclick: (e) => startBattle(this.app, e.currentTarget),
          },
          icon("target", 16),
          h("span", { text: t("start_battle") }),
        )
      : null;
    this.board = h("div", { class: "arena-board", "data-testid": "leaderboard", "aria-live": "polite" });
    this.languages = h("select", {
      "data-testid": "filter-language",
      onchange: () => this.setFilter("language", this.languages.value),
    });
    const dateInput = (name) =>
      h("input", {
        type: "date",
        "data-testid": `filter-${name}`,
        onchange: (e) => this.setFilter(name, e.currentTarget.value),
      });
    this.el = h(
      "div",
      { class: "arena-page" },
      h(
        "section",
        { class: "arena-intro" },
        h("h2", { text: blind ? t("blind_title") : t("arena_title") }),
        h("p", { class: "muted", text: blind ? t("blind_intro") : t("arena_intro") }),
        start,
      ),
      h(
        "section",
        { class: "arena-leaderboard" },
        h(
          "div",
          { class: "arena-head" },
          h("h2", { text: t("leaderboard") }),
          this.app.can(EXPORT)
            ? h("a", {
                class: "button secondary small-btn",
                href: "/app/arena/battles.jsonl",
                download: "kuwa-arena-battles.jsonl",
                "data-testid": "battles-export",
                text: t("export_battles"),
              })
            : null,
        ),
        h(
          "form",
          { class: "arena-filters", onsubmit: (e) => e.preventDefault() },
          h("label", {}, h("span", { text: t("from_date") }), dateInput("since")),
          h("label", {}, h("span", { text: t("to_date") }), dateInput("until")),
          h("label", {}, h("span", { text: t("language") }), this.languages),
        ),
        this.board,
      ),
    );
    container.replaceChildren(this.el);
    this.board.replaceChildren(h("p", { class: "muted", text: t("loading") }));
    this.app.loadModels().then(() => this.load());
  }

  unmount() {
    this.closed = true;
  }

  setFilter(name, value) {
    this.filters[name] = value;
    this.load();
  }

  async load() {
    const seq = ++this.seq;
    const params = new URLSearchParams(Object.entries(this.filters).filter(([, v]) => v));
    let data;
    try {
      data = await api.get(`/app/arena/leaderboard${params.size ? `?${params}` : ""}`);
    } catch (err) {
      if (seq === this.seq) this.board.replaceChildren(h("p", { class: "form-error", role: "alert", text: err.message }));
      return;
    }
    if (this.closed || seq !== this.seq) return;
    this.renderLanguages(data.languages || {});
    this.renderBoard(data);
  }

  renderLanguages(languages) {
    const chosen = this.filters.language;
    const names = typeof Intl.DisplayNames === "function" ? new Intl.DisplayNames([document.documentElement.lang || "en"], { type: "language" }) : null;
    const label = (code) => {
      if (code === "und") return t("language_unknown");
      try {
        return names?.of(code) || code;
      } catch {
        return code;
      }
    };
    const codes = Object.keys(languages);
    if (chosen && !codes.includes(chosen)) codes.push(chosen);
    this.languages.replaceChildren(
      h("option", { value: "", text: t("all_languages") }),
      ...codes.map((code) =>
        h("option", {
          value: code,
          selected: code === chosen,
          text: languages[code] != null ? `${label(code)} (${languages[code]})` : label(code),
        }),
      ),
    );
  }

  name(code) {
    return this.app.models.get(code)?.name || code;
  }

  renderBoard(data) {
    const rows = data.leaderboard || [];
    if (!rows.length) {
      this.board.replaceChildren(h("p", { class: "muted", "data-testid": "no-battles", text: t("no_battles") }));
      return;
    }
    const lo = Math.min(...rows.map((r) => r.low));
    const hi = Math.max(...rows.map((r) => r.high));
    const span = Math.max(hi - lo, 1);
    const pct = (v) => `${(((v - lo) / span) * 100).toFixed(1)}%`;
    const table = h(
      "table",
      { class: "rank-table", "data-testid": "rank-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["#", t("model"), t("score"), t("ci95"), t("win_rate"), t("battles"), "Elo"].map((text) =>
            h("th", { scope: "col", text }),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((r, i) => {
          const m = this.app.models.get(r.model);
          const bar = h("span", { class: "ci-bar" }, h("span", { class: "ci-span" }), h("span", { class: "ci-dot" }));
          bar.style.setProperty("--lo", pct(r.low));
          bar.style.setProperty("--hi", pct(r.high));
          bar.style.setProperty("--at", pct(r.score));
          return h(
            "tr",
            { "data-testid": `rank-${r.model}` },
            h("td", { text: String(i + 1) }),
            h("td", {}, h("div", { class: "rank-model" }, avatar(this.name(r.model), m?.image, r.model, "xs"), h("span", { text: this.name(r.model) }))),
            h("td", { class: "num", text: r.score.toFixed(0) }),
            h("td", { class: "ci" }, bar, h("span", { class: "ci-text", text: `${r.low.toFixed(0)}–${r.high.toFixed(0)}` })),
            h("td", { class: "num", text: `${(r.win_rate * 100).toFixed(0)}%` }),
            h("td", { class: "num", text: String(r.battles) }),
            h("td", { class: "num", text: data.elo?.[r.model] != null ? data.elo[r.model].toFixed(0) : "—" }),
          );
        }),
      ),
    );
    this.board.replaceChildren(
      h("div", { class: "table-scroll" }, table),
      h("p", { class: "muted small rank-note", "data-testid": "rank-note", text: t("battles_counted", { n: data.battles }) }),
      this.heatmap(rows.map((r) => r.model), data.win_matrix || {}),
    );
  }

  /** Row model's win rate against the column model, coloured from red (0 %) to green (100 %). */
  heatmap(order, matrix) {
    const models = order.filter((m) => matrix[m]);
    if (models.length < 2) return h("div");
    const cell = (row, col) => {
      const v = matrix[row]?.[col];
      if (row === col || v == null) return h("td", { class: "heat none", text: "—", "aria-label": t("never_met") });
      const el = h("td", {
        class: "heat",
        text: `${Math.round(v * 100)}%`,
        title: t("heat_title", { row: this.name(row), col: this.name(col), rate: Math.round(v * 100) }),
      });
      el.style.setProperty("--heat", String(Math.round(v * 120)));
      return el;
    };
    return h(
      "section",
      { class: "heatmap", "data-testid": "heatmap" },
      h("h3", { text: t("win_matrix") }),
      h("p", { class: "muted small", text: t("win_matrix_hint") }),
      h(
        "div",
        { class: "table-scroll" },
        h(
          "table",
          { class: "heat-table" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col", "aria-label": t("model") }), models.map((c) => h("th", { scope: "col", text: this.name(c) })))),
          h(
            "tbody",
            {},
            models.map((row) => h("tr", {}, h("th", { scope: "row", text: this.name(row) }), models.map((col) => cell(row, col)))),
          ),
        ),
      ),
    );
  }
}
