// A room's board: the grid of one column per model (a head, then each turn's answer) with the
// prompts across it, the column tabs shown on narrow screens, the empty-room hint, and the
// highlight of a prompt with its answers. Answers and prompts render through room_answers.js
// and room_prompts.js; the RoomView (room.js) decides when.
import { avatar, h, icon, iconButton } from "./dom.js";
import { t } from "./i18n.js";
import { hasSettings, openModelSettings } from "./room_settings.js";
import { thread } from "./thread.js";

export class Board {
  constructor(view) {
    this.view = view;
    this.columnEls = new Map(); // model code → {el}
    this.activeTab = null; // the model code whose column shows on a narrow screen
    this.tabs = h("div", { class: "col-tabs", role: "tablist", "aria-label": t("models") });
    this.el = h("div", { class: "board" });
    this.emptyHint = h("div", { class: "empty-room", hidden: true });
  }

  /** The room's models, then any other model that answered. */
  columns(turns) {
    const codes = [...(this.view.room?.models || [])];
    for (const turn of turns) for (const code of turn.answers.keys()) if (!codes.includes(code)) codes.push(code);
    return codes;
  }

  render() {
    const view = this.view;
    if (!view.room) {
      this.el.replaceChildren(
        ...[0, 1].map(() => h("div", { class: "col skeleton-col", "aria-hidden": "true" })),
      );
      return;
    }
    const turns = thread(view.msgs.values());
    const codes = this.columns(turns);
    if (!codes.includes(this.activeTab)) this.activeTab = codes[0] || null;
    const T = turns.length;
    this.el.style.setProperty("--cols", String(codes.length));
    this.el.classList.toggle("single", codes.length === 1);
    view.el.classList.toggle("multi", codes.length > 1);

    // Column heads and cells; while anything runs, each head counts its finished answers.
    const busy = view.anyRunning();
    const columns = codes.map((code, i) => {
      const model = view.model(code);
      let col = this.columnEls.get(code);
      if (!col) {
        col = { el: h("section", { class: "col", "data-testid": `column-${code}`, "data-model": code }) };
        this.columnEls.set(code, col);
      }
      col.el.style.gridColumn = String(i + 1);
      col.el.style.gridRow = `1 / span ${1 + 2 * T}`;
      col.el.classList.toggle("active", code === this.activeTab);
      col.el.setAttribute("aria-label", model.name);
      const running = turns.some((turn) => turn.answers.get(code)?.shown?.status === "running");
      let progress = null;
      if (busy) {
        const shown = turns.map((turn) => turn.answers.get(code)?.shown).filter(Boolean);
        progress = { done: shown.filter((m) => m.status !== "running").length, total: shown.length };
      }
      const cells = [this.columnHead(model, running, progress)];
      for (const turn of turns) {
        cells.push(h("div", { class: "slot", "aria-hidden": "true" }));
        const entry = turn.answers.get(code);
        if (entry?.shown) {
          const rec = view.answers.record(entry.shown);
          view.answers.update(rec, entry.shown, entry.versions, model);
          cells.push(h("div", { class: "cell" }, rec.el));
        } else {
          cells.push(h("div", { class: "cell empty", "aria-hidden": "true" }));
        }
      }
      col.el.replaceChildren(...cells);
      return col.el;
    });
    for (const code of [...this.columnEls.keys()]) if (!codes.includes(code)) this.columnEls.delete(code);

    const prompts = turns.map((turn, i) => {
      const rec = view.prompts.record(turn.prompt);
      const asked = codes.filter((code) => turn.answers.has(code)).map((code) => ({ ...view.model(code), code }));
      view.prompts.update(rec, turn.prompt, turn.branches, asked);
      rec.wrap.style.gridRow = String(2 + 2 * i);
      return rec.wrap;
    });
    this.el.replaceChildren(...columns, ...prompts);
    this.renderTabs(codes);

    this.emptyHint.hidden = T > 0;
    if (!T) {
      this.emptyHint.replaceChildren(
        h("div", { class: "empty-avatars" }, codes.map((c) => avatar(view.model(c).name, view.model(c).image, c, "lg"))),
        h("p", { class: "empty-title", text: codes.map((c) => view.model(c).name).join(" · ") }),
        h("p", {
          class: "muted",
          text: view.canSend() ? t("empty_room_hint") : t("empty_room_viewer"),
        }),
      );
    }
  }

  renderTabs(codes) {
    const view = this.view;
    if (codes.length < 2) {
      this.tabs.replaceChildren();
      this.tabs.hidden = true;
      return;
    }
    this.tabs.hidden = false;
    this.tabs.replaceChildren(
      ...codes.map((code) => {
        const model = view.model(code);
        const selected = code === this.activeTab;
        return h(
          "button",
          {
            type: "button",
            role: "tab",
            class: "col-tab",
            "aria-selected": String(selected),
            "data-testid": `tab-${code}`,
            "data-focus-key": `tab-${code}`,
            tabindex: selected ? "0" : "-1",
            onclick: () => this.selectTab(code),
            onkeydown: (e) => {
              const i = codes.indexOf(code);
              let j = -1;
              if (e.key === "ArrowRight") j = (i + 1) % codes.length;
              else if (e.key === "ArrowLeft") j = (i - 1 + codes.length) % codes.length;
              if (j >= 0) {
                e.preventDefault();
                this.selectTab(codes[j]);
                this.tabs.querySelector(`[data-testid="tab-${CSS.escape(codes[j])}"]`)?.focus();
              }
            },
          },
          avatar(model.name, model.image, code, "xs"),
          h("span", { text: model.name }),
          view.composer.direct.has(code) ? h("span", { class: "tab-direct", "aria-label": t("direct_on") }, icon("target", 12)) : null,
        );
      }),
    );
  }

  selectTab(code) {
    this.activeTab = code;
    for (const [c, col] of this.columnEls) col.el.classList.toggle("active", c === code);
    for (const tab of this.tabs.querySelectorAll(".col-tab")) {
      const on = tab.dataset.testid === `tab-${code}`;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
    }
  }

  columnHead(model, running, progress = null) {
    const view = this.view;
    const on = view.composer.direct.has(model.code);
    const canDirect = view.canSend() && (view.room?.models || []).length > 1;
    const av = avatar(model.name, model.image, model.code, "md");
    const avatarEl = canDirect
      ? h(
          "button",
          {
            type: "button",
            class: `col-avatar${on ? " on" : ""}`,
            "aria-pressed": String(on),
            "aria-label": t("direct_toggle", { name: model.name }),
            title: on ? t("direct_on_title", { name: model.name }) : t("direct_toggle", { name: model.name }),
            "data-testid": `direct-${model.code}`,
            "data-focus-key": `direct-${model.code}`,
            onclick: () => view.composer.toggleDirect(model.code),
          },
          av,
        )
      : h("span", { class: "col-avatar static" }, av);
    return h(
      "header",
      { class: `col-head${on ? " direct" : ""}` },
      avatarEl,
      h(
        "div",
        { class: "col-title" },
        h("span", { class: "col-name", text: model.name }),
        h(
          "span",
          { class: "col-sub" },
          h("span", { class: `live-dot${model.live ? " on" : ""}`, "aria-hidden": "true" }),
          h("span", {
            text: on ? t("direct_on") : running ? t("writing") : model.live ? t("live") : t("offline"),
          }),
        ),
      ),
      progress && progress.total ? this.progressEl(model, progress) : null,
      running ? h("span", { class: "spinner", "aria-hidden": "true" }) : null,
      this.settingsButton(model),
    );
  }

  /** The owner's gear for the model's settings in this room (none in an arena battle). */
  settingsButton(model) {
    const view = this.view;
    if (view.role !== "owner" || view.room?.arena) return null;
    const tuned = hasSettings(view.room, model.code);
    const label = t(tuned ? "ms_button_tuned" : "ms_button", { name: model.name });
    return iconButton("sliders", label, {
      class: `icon-btn sm col-settings${tuned ? " tuned" : ""}`,
      "aria-pressed": String(tuned),
      "data-testid": `settings-${model.code}`,
      "data-focus-key": `settings-${model.code}`,
      onclick: () => openModelSettings(view, model.code),
    });
  }

  progressEl(model, { done, total }) {
    const label = t("progress_of", { name: model.name, done, total });
    return h(
      "span",
      {
        class: `col-progress${done === total ? " complete" : ""}`,
        "data-testid": `progress-${model.code}`,
        role: "progressbar",
        "aria-label": label,
        "aria-valuemin": "0",
        "aria-valuemax": String(total),
        "aria-valuenow": String(done),
        title: label,
        style: { "--p": `${Math.round((100 * done) / total)}%` },
      },
      h("span", { class: "col-progress-text", text: `${done}/${total}` }),
    );
  }

  /** Hovering or focusing a prompt or an answer highlights the prompt with its answers. */
  bindHighlight() {
    const board = this.el;
    let current = null;
    const set = (pid) => {
      if (pid === current) return;
      for (const el of board.querySelectorAll(".hl")) el.classList.remove("hl");
      current = pid;
      if (pid) for (const el of board.querySelectorAll(`[data-prompt="${CSS.escape(pid)}"]`)) el.classList.add("hl");
    };
    const find = (target) => target?.closest?.(".answer, .prompt")?.dataset.prompt || null;
    board.addEventListener("mouseover", (e) => set(find(e.target)));
    board.addEventListener("mouseleave", () => set(find(document.activeElement)));
    board.addEventListener("focusin", (e) => set(find(e.target)));
    board.addEventListener("focusout", (e) => {
      if (!board.contains(e.relatedTarget)) set(null);
    });
  }
}
