// No room open: pick models (search, sort, multi-select), choose chained or not, start a chat.
import { api } from "./api.js";
import { avatar, h, icon, toast } from "./dom.js";
import { t } from "./i18n.js";

const SORT_KEY = "kuwa.picker.sort";
const CHAINED_KEY = "kuwa.picker.chained";
const MAX_MODELS = 8;

export class Picker {
  constructor(app) {
    this.app = app;
    this.selected = new Set();
    this.query = "";
    this.sort = localStorage.getItem(SORT_KEY) || "order";
    this.chained = localStorage.getItem(CHAINED_KEY) !== "false";
    this.busy = false;
  }

  mount(container) {
    this.app.setTitle(t("new_chat"));
    this.grid = h("div", { class: "model-grid", role: "group", "aria-label": t("models") });
    this.searchInput = h("input", {
      type: "search",
      placeholder: t("search_models"),
      "aria-label": t("search_models"),
      "data-testid": "model-search",
      autocomplete: "off",
      oninput: () => {
        this.query = this.searchInput.value.trim().toLowerCase();
        this.renderGrid();
      },
    });
    const sortSelect = h(
      "select",
      {
        "aria-label": t("sort_by"),
        "data-testid": "model-sort",
        onchange: () => {
          this.sort = sortSelect.value;
          localStorage.setItem(SORT_KEY, this.sort);
          this.renderGrid();
        },
      },
      ["order", "name", "recent"].map((key) =>
        h("option", { value: key, text: t(`sort_${key}`), selected: key === this.sort }),
      ),
    );
    this.chainedBox = h("input", {
      type: "checkbox",
      role: "switch",
      checked: this.chained,
      "data-testid": "picker-chained",
      onchange: () => {
        this.chained = this.chainedBox.checked;
        localStorage.setItem(CHAINED_KEY, String(this.chained));
        this.chainedHint.textContent = this.chained ? t("chained_hint") : t("single_turn_hint");
      },
    });
    this.chainedHint = h("span", {
      class: "hint",
      text: this.chained ? t("chained_hint") : t("single_turn_hint"),
    });
    this.count = h("span", { class: "pick-count", "aria-live": "polite" });
    this.start = h(
      "button",
      { type: "button", class: "start", "data-testid": "start-chat", onclick: () => this.startChat() },
      icon("chat"),
      h("span", { text: t("start_chat") }),
    );
    this.clear = h("button", {
      type: "button",
      class: "link",
      text: t("clear_selection"),
      onclick: () => {
        this.selected.clear();
        this.renderGrid();
      },
    });
    const canCreate = this.app.can("Room_update_new_chat");
    this.el = h(
      "div",
      { class: "picker" },
      h(
        "div",
        { class: "picker-head" },
        h("h2", { class: "picker-title", text: t("pick_title") }),
        h("p", { class: "muted", text: t("pick_subtitle") }),
      ),
      h(
        "div",
        { class: "picker-tools" },
        h("div", { class: "search-wrap" }, icon("search", 16), this.searchInput),
        h("label", { class: "sort" }, h("span", { text: t("sort_by") }), sortSelect),
      ),
      this.grid,
      canCreate
        ? h(
            "div",
            { class: "picker-bar" },
            h(
              "label",
              { class: "switch" },
              this.chainedBox,
              h("span", { class: "switch-text" }, h("strong", { text: t("chained") }), this.chainedHint),
            ),
            h("div", { class: "picker-go" }, this.count, this.clear, this.start),
          )
        : h("p", { class: "muted", text: t("no_new_chat_permission") }),
    );
    container.replaceChildren(this.el);
    this.renderGrid();
    // Fresh "live" dots each time the picker opens.
    this.app.loadModels(this.app.modelsLoaded).then(() => this.renderGrid());
  }

  unmount() {}

  /** Models ranked by the chosen order; "recent" = the last time a room used it. */
  ordered() {
    const models = [...this.app.models.values()];
    const q = this.query;
    const shown = q
      ? models.filter((m) =>
          [m.name, m.code, m.description].some((v) => String(v || "").toLowerCase().includes(q)),
        )
      : models;
    if (this.sort === "name") {
      shown.sort((a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: "base" }));
    } else if (this.sort === "recent") {
      const last = new Map();
      for (const room of this.app.sidebar.rooms) {
        for (const code of room.models || []) {
          last.set(code, Math.max(last.get(code) || 0, room.updated || 0));
        }
      }
      shown.sort((a, b) => (last.get(b.code) || 0) - (last.get(a.code) || 0) || a.order - b.order);
    } else {
      shown.sort((a, b) => a.order - b.order || a.name.localeCompare(b.name));
    }
    return shown;
  }

  renderGrid() {
    if (!this.grid) return;
    const models = this.ordered();
    const focusCode = document.activeElement?.dataset?.code;
    if (!this.app.modelsLoaded) {
      this.grid.replaceChildren(
        ...Array.from({ length: 4 }, () => h("div", { class: "model-card skeleton", "aria-hidden": "true" })),
      );
    } else if (!models.length) {
      this.grid.replaceChildren(
        h("p", { class: "empty", text: this.app.models.size ? t("no_models_found") : t("no_models") }),
      );
    } else {
      this.grid.replaceChildren(...models.map((m) => this.card(m)));
    }
    if (focusCode) this.grid.querySelector(`[data-code="${CSS.escape(focusCode)}"]`)?.focus();
    const n = this.selected.size;
    if (this.count) {
      this.count.textContent = n ? t("selected_count", { n }) : t("select_models");
      this.start.disabled = n === 0 || this.busy;
      this.clear.hidden = n === 0;
    }
  }

  card(m) {
    const on = this.selected.has(m.code);
    return h(
      "button",
      {
        type: "button",
        class: `model-card${on ? " selected" : ""}${m.live ? "" : " offline"}`,
        "aria-pressed": String(on),
        "data-testid": `model-card-${m.code}`,
        "data-code": m.code,
        title: m.description || m.name,
        onclick: () => this.toggle(m.code),
        ondblclick: () => {
          this.selected = new Set([m.code]);
          this.startChat();
        },
      },
      h("span", { class: "card-check", "aria-hidden": "true" }, icon("check", 14)),
      h(
        "span",
        { class: "card-top" },
        avatar(m.name, m.image, m.code, "lg"),
        h(
          "span",
          {
            class: `live-dot${m.live ? " on" : ""}`,
            title: m.live ? t("live") : t("offline"),
            "aria-label": m.live ? t("live") : t("offline"),
            role: "img",
          },
        ),
      ),
      h("span", { class: "card-name", text: m.name }),
      h("span", { class: "card-code", text: m.code }),
      h("span", { class: "card-desc", text: m.description || "" }),
    );
  }

  toggle(code) {
    if (this.selected.has(code)) this.selected.delete(code);
    else if (this.selected.size >= MAX_MODELS) {
      toast(t("too_many_models", { n: MAX_MODELS }));
      return;
    } else this.selected.add(code);
    this.renderGrid();
  }

  async startChat() {
    if (!this.selected.size || this.busy) return;
    this.busy = true;
    this.start.disabled = true;
    // Keep the catalog's order in the room's columns.
    const models = [...this.app.models.values()]
      .filter((m) => this.selected.has(m.code))
      .sort((a, b) => a.order - b.order)
      .map((m) => m.code);
    try {
      const room = await api.post("/app/rooms", { models, chained: this.chained });
      this.app.sidebar.load();
      this.app.navigate(`/rooms/${room.id}`, { room });
    } catch (err) {
      toast(err.message);
    } finally {
      this.busy = false;
      if (this.start) this.start.disabled = this.selected.size === 0;
    }
  }
}
