// A room's composer: the message box with its chips (a direct send's models, quoted answers),
// send and stop, and the chained toggle — or, for whoever may not send, a note saying so.
// Owned by a RoomView (room.js); the arena bar above it is the view's (see renderComposerState).
import { api } from "./api.js";
import { h, icon, iconButton, toast } from "./dom.js";
import { t } from "./i18n.js";
import { composeQuoted } from "./thread.js";

export class Composer {
  constructor(view) {
    this.view = view;
    this.el = h("div", { class: "composer-wrap" });
    this.direct = new Set(); // model codes the next prompt goes to (none: all of them)
    this.quotes = []; // {id, model, name, text} of the answers the next prompt quotes
    this.sending = false;
    this.builtMode = null; // what build() made: "none", "send" or "view"
    this.textarea = null;
    this.chips = null;
  }

  mode() {
    const view = this.view;
    if (!view.room) return "none";
    return view.canSend() ? "send" : "view";
  }

  build() {
    const view = this.view;
    this.builtMode = this.mode();
    if (!view.room) {
      this.el.replaceChildren();
      return;
    }
    if (!view.canSend()) {
      this.textarea = null;
      this.chips = null;
      this.el.replaceChildren(
        h(
          "div",
          { class: "viewer-note", "data-testid": "viewer-note" },
          icon("eye", 16),
          h("span", { text: view.isParticipant ? t("no_send_permission") : t("viewer_note") }),
        ),
      );
      return;
    }
    this.chips = h("div", { class: "chips", "aria-live": "polite" });
    this.textarea = h("textarea", {
      class: "composer-input",
      rows: 1,
      "data-testid": "composer",
      "aria-label": t("message"),
      placeholder: t("message_placeholder"),
      enterkeyhint: "send",
    });
    this.textarea.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        this.send();
      }
    });
    this.textarea.addEventListener("input", () => this.autosize());
    const files = view.files;
    files.bind(null, this.textarea);
    this.sendBtn = h(
      "button",
      { type: "submit", class: "send", "data-testid": "send", "aria-label": t("send"), title: t("send_hint") },
      icon("send"),
      h("span", { class: "btn-text", text: t("send") }),
    );
    this.stopBtn = h(
      "button",
      {
        type: "button",
        class: "stop secondary",
        "data-testid": "stop",
        "aria-label": t("stop"),
        hidden: true,
        onclick: () => this.stop(),
      },
      icon("stop", 16),
      h("span", { class: "btn-text", text: t("stop") }),
    );
    this.chainedBox = h("input", {
      type: "checkbox",
      role: "switch",
      "data-testid": "chained",
      onchange: () => this.setChained(this.chainedBox.checked),
    });
    this.chainedLabel = h("span", { class: "switch-text" });
    const form = h(
      "form",
      {
        class: "composer",
        onsubmit: (e) => {
          e.preventDefault();
          this.send();
        },
      },
      files.strip,
      this.chips,
      this.textarea,
      h(
        "div",
        { class: "composer-row" },
        files.canUpload() ? files.button() : null,
        h(
          "label",
          { class: "switch small", title: t("chained_hint") },
          this.chainedBox,
          this.chainedLabel,
        ),
        h("span", { class: "grow" }),
        this.stopBtn,
        this.sendBtn,
      ),
    );
    this.el.replaceChildren(form);
    files.render();
    this.renderChips();
    view.renderComposerState();
  }

  autosize() {
    const ta = this.textarea;
    if (!ta) return;
    ta.style.height = "auto";
    ta.style.height = `${Math.min(ta.scrollHeight + 2, Math.round(window.innerHeight * 0.4))}px`;
  }

  /** Rebuild when what I may do changed; else update stop, send, chained and the placeholder. */
  render() {
    const view = this.view;
    if (this.builtMode !== this.mode()) {
      this.build();
      return;
    }
    if (!view.room) return;
    if (!this.textarea) return;
    const running = view.anyRunning();
    this.stopBtn.hidden = !running;
    this.sendBtn.disabled = this.sending;
    const chained = Boolean(view.room.chained);
    this.chainedBox.checked = chained;
    this.chainedBox.disabled = !view.isOwner;
    this.chainedLabel.textContent = chained ? t("chained") : t("single_turn");
    const names = (this.direct.size ? [...this.direct] : view.room.models || []).map((c) => view.model(c).name);
    let placeholder = t("message_placeholder");
    if (names.length > 2) placeholder = t("message_to_n", { n: names.length });
    else if (names.length) placeholder = t("message_to", { names: names.join(", ") });
    if (this.textarea.placeholder !== placeholder) this.textarea.placeholder = placeholder;
  }

  renderChips() {
    const view = this.view;
    if (!this.chips) return;
    const chips = [];
    if (this.direct.size) {
      const names = [...this.direct].map((c) => view.model(c).name).join(", ");
      chips.push(
        h(
          "span",
          { class: "chip direct-chip", "data-testid": "direct-chip" },
          icon("target", 14),
          h("span", { text: t("only_to", { names }) }),
          iconButton("close", t("send_to_all"), {
            class: "icon-btn xs",
            onclick: () => {
              this.direct.clear();
              view.structureDirty = true;
              view.schedule();
              this.renderChips();
            },
          }),
        ),
      );
    }
    for (const q of this.quotes) {
      chips.push(
        h(
          "span",
          { class: "chip quote-chip", "data-testid": "quote-chip", title: q.text.slice(0, 400) },
          icon("quote", 14),
          h("strong", { text: q.name }),
          h("span", { class: "chip-text", text: q.text.replace(/\s+/g, " ").slice(0, 60) }),
          iconButton("close", t("remove_quote"), {
            class: "icon-btn xs",
            "data-testid": "remove-quote",
            onclick: () => {
              this.unquote(q.id);
              view.structureDirty = true;
              view.schedule();
            },
          }),
        ),
      );
    }
    this.chips.replaceChildren(...chips);
    this.chips.hidden = !chips.length;
  }

  /** A column head's avatar: send the next prompt to this model only (or not any more). */
  toggleDirect(code) {
    const view = this.view;
    if (this.direct.has(code)) this.direct.delete(code);
    else this.direct.add(code);
    view.structureDirty = true;
    view.schedule();
    this.renderChips();
    this.textarea?.focus();
  }

  /** An answer's quote button: quote it in the next prompt (or not any more). */
  toggleQuote(m) {
    const view = this.view;
    if (this.quotes.some((q) => q.id === m.id)) this.quotes = this.quotes.filter((q) => q.id !== m.id);
    else this.quotes.push({ id: m.id, model: m.model, name: view.model(m.model).name, text: m.content });
    this.renderChips();
    view.structureDirty = true;
    view.schedule();
    this.textarea?.focus({ preventScroll: true });
  }

  unquote(id) {
    this.quotes = this.quotes.filter((q) => q.id !== id);
    this.renderChips();
  }

  async send() {
    const view = this.view;
    if (this.sending || !this.textarea) return;
    const content = composeQuoted(this.textarea.value, this.quotes);
    if (!content.trim()) {
      this.textarea.focus();
      return;
    }
    const body = { content };
    if (this.direct.size) body.models = (view.room.models || []).filter((c) => this.direct.has(c));
    this.sending = true;
    view.renderComposerState();
    try {
      const res = await api.post(`/app/rooms/${view.id}/messages`, body);
      this.textarea.value = "";
      this.autosize();
      this.quotes = [];
      this.renderChips();
      view.accept(res);
      view.app.sidebar.bump(view.id);
      if (!view.room.title) view.refreshMeta();
    } catch (err) {
      toast(err.message);
    } finally {
      this.sending = false;
      view.renderComposerState();
      this.textarea?.focus({ preventScroll: true });
    }
  }

  async stop() {
    try {
      await api.post(`/app/rooms/${this.view.id}/stop`, {});
    } catch (err) {
      toast(err.message);
    }
  }

  async setChained(chained) {
    const view = this.view;
    try {
      const room = await api.post(`/app/rooms/${view.id}`, { chained });
      view.onRoom(room);
    } catch (err) {
      toast(err.message);
      view.renderComposerState();
    }
  }
}
