// No room open: pick models (search, sort, multi-select), choose chained or not, start a chat.
import { avatar, h, icon, toast } from "./dom.js";
import { t } from "./i18n.js";
import { StoreView, isStorePath, loadBots, startRoom, visibilityBadge } from "./store.js";

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
    // /store is the bot store; chat.js routes every path but /rooms/N here.
    this.store = isStorePath() ? new StoreView(app) : null;
  }

  mount(container) {
    if (this.store) {
      this.store.mount(container);
      return;
    }
    this.app.setTitle(t("new_chat"));
    this.grid = h("div", { class: "model-grid", role: "group", "aria-label": t("models") });
    this.botGrid = h("div", { class: "model-grid bot-grid", role: "group", "aria-label": t("bots") });
    this.botSection = h(
      "section",
      { class: "picker-bots", "data-testid": "picker-bots", hidden: true },
      h(
        "div",
        { class: "picker-section-head" },
        h("h3", { class: "picker-section-title", text: t("bots") }),
        h("span", { class: "muted small", text: t("bots_hint") }),
        this.app.can("tab_Store")
          ? h("a", {
              class: "picker-store-link",
              href: "/store",
              text: t("store_title"),
              onclick: (e) => {
                if (e.metaKey || e.ctrlKey || e.shiftKey) return;
                e.preventDefault();
                this.app.navigate("/store");
              },
            })
          : null,
      ),
      this.botGrid,
    );
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
      this.botSection,
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
    loadBots(this.app, Boolean(this.app.botsLoaded)).then(() => this.renderGrid());
  }

  unmount() {
    this.store?.unmount();
  }

  /** The bots of /app/models that match the search (most used first, as the server sends). */
  shownBots() {
    const bots = [...(this.app.bots?.values() || [])];
    const q = this.query;
    const shown = q
      ? bots.filter((b) =>
          [b.name, b.description, b.owner, b.code].some((v) => String(v || "").toLowerCase().includes(q)),
        )
      : bots;
    if (this.sort === "name") {
      shown.sort((a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: "base" }));
    }
    return shown;
  }

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
    const bots = this.shownBots();
    this.botSection.hidden = !bots.length;
    this.botGrid.replaceChildren(...bots.map((b) => this.botCard(b)));
    if (focusCode) this.el.querySelector(`[data-code="${CSS.escape(focusCode)}"]`)?.focus();
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

  botCard(b) {
    const on = this.selected.has(b.code);
    return h(
      "button",
      {
        type: "button",
        class: `model-card bot-card${on ? " selected" : ""}${b.live ? "" : " offline"}`,
        "aria-pressed": String(on),
        "data-testid": `bot-card-${b.id}`,
        "data-code": b.code,
        title: b.description || b.name,
        onclick: () => this.toggle(b.code),
        ondblclick: () => {
          this.selected = new Set([b.code]);
          this.startChat();
        },
      },
      h("span", { class: "card-check", "aria-hidden": "true" }, icon("check", 14)),
      h(
        "span",
        { class: "card-top" },
        avatar(b.name, b.avatar, b.code, "lg"),
        h("span", {
          class: `live-dot${b.live ? " on" : ""}`,
          title: b.live ? t("live") : t("offline"),
          "aria-label": b.live ? t("live") : t("offline"),
          role: "img",
        }),
      ),
      h("span", { class: "card-badges" }, visibilityBadge(b.visibility)),
      h("span", { class: "card-name", text: b.name }),
      h("span", { class: "card-by", text: b.owner ? t("by_owner", { name: b.owner }) : "" }),
      h("span", { class: "card-desc", text: b.description || "" }),
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
    // Bots after the models, in the order the picker shows them.
    for (const b of this.app.bots?.values() || []) if (this.selected.has(b.code)) models.push(b.code);
    try {
      localStorage.setItem(CHAINED_KEY, String(this.chained));
      await startRoom(this.app, models);
    } catch (err) {
      toast(err.message);
    } finally {
      this.busy = false;
      if (this.start) this.start.disabled = this.selected.size === 0;
    }
  }
}
