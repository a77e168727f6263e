// A room's answers: one record (DOM nodes and what they show) per answer, its text and
// translation, the foot (versions, react buttons), the feedback panel, and the answer actions
// (translate, rate, regenerate). Owned by a RoomView (room.js), which holds the messages.
import { api } from "./api.js";
import { h, icon, iconButton, toast } from "./dom.js";
import { lang, t } from "./i18n.js";
import { copyText, render as renderMarkdown } from "./markdown.js";
import { decorateCitations } from "./room_files.js";

const POSITIVE = ["correct", "easy_to_understand", "complete"];
const NEGATIVE = ["unsafe", "incorrect", "irrelevant", "language"];

export class Answers {
  constructor(view) {
    this.view = view;
    this.els = new Map(); // answer id → its record
    this.showOriginal = new Set(); // answer ids shown untranslated
    this.feedbackOpen = null; // {id, rating}: the answer whose feedback panel is open
    this.renderCost = new Map(); // answer id → {next}: slow to render, so not again before next
  }

  forget(id) {
    this.els.delete(id);
  }

  record(m) {
    let rec = this.els.get(m.id);
    if (rec) return rec;
    const body = h("div", { class: "md answer-body" });
    const trans = h("div", { class: "md translation", "data-testid": `translation-${m.id}`, hidden: true, lang: lang() });
    const transBar = h("div", { class: "trans-bar", hidden: true });
    const error = h("div", { class: "answer-error", role: "alert", hidden: true });
    const foot = h("div", { class: "answer-foot" });
    const panelSlot = h("div", { class: "panel-slot" });
    const el = h(
      "article",
      {
        class: "answer",
        tabindex: "0",
        "data-testid": `answer-${m.id}`,
        "data-id": String(m.id),
        "data-prompt": String(m.parent),
        "data-model": m.model,
        "aria-label": t("answer_of", { name: this.view.model(m.model).name }),
      },
      transBar,
      body,
      trans,
      error,
      foot,
      panelSlot,
    );
    rec = { el, body, trans, transBar, error, foot, panelSlot, sig: "", text: null, ttext: null };
    this.els.set(m.id, rec);
    this.view.dirty.add(m.id);
    return rec;
  }

  update(rec, m, versions, model) {
    const view = this.view;
    rec.el.dataset.status = m.status;
    rec.el.dataset.prompt = String(m.parent);
    const quoted = view.composer.quotes.some((q) => q.id === m.id);
    const index = versions.findIndex((v) => v.id === m.id);
    const sig = JSON.stringify([
      m.status,
      index,
      versions.length,
      m.feedback?.rating || 0,
      m.translation?.status || "",
      this.showOriginal.has(m.id),
      quoted,
      view.role,
      model.react_buttons,
      m.error,
      this.feedbackOpen?.id === m.id,
    ]);
    if (sig === rec.sig) return;
    rec.sig = sig;
    // Error / cancelled notes.
    if (m.status === "failed") {
      rec.error.hidden = false;
      rec.error.textContent = m.error || t("answer_failed");
    } else if (m.status === "cancelled") {
      rec.error.hidden = false;
      rec.error.textContent = t("answer_cancelled");
    } else {
      rec.error.hidden = true;
      rec.error.textContent = "";
    }
    rec.error.classList.toggle("soft", m.status === "cancelled");
    // Translation bar.
    const tr = m.translation;
    if (tr && (tr.content || tr.status === "running")) {
      const original = this.showOriginal.has(m.id);
      rec.transBar.hidden = false;
      rec.transBar.replaceChildren(
        h("span", { class: "trans-label" }, icon("translate", 14), h("span", {
          text: tr.status === "running" ? t("translating") : tr.status === "failed" ? t("translation_failed") : t("translated"),
        })),
        h("button", {
          type: "button",
          class: "link",
          "data-testid": "show-original",
          "data-focus-key": `${m.id}:orig`,
          "aria-pressed": String(original),
          text: original ? t("show_translation") : t("show_original"),
          onclick: () => {
            if (this.showOriginal.has(m.id)) this.showOriginal.delete(m.id);
            else this.showOriginal.add(m.id);
            view.structureDirty = true;
            view.dirty.add(m.id);
            view.schedule();
          },
        }),
      );
      rec.trans.hidden = original;
      rec.body.hidden = !original;
    } else {
      rec.transBar.hidden = true;
      rec.trans.hidden = true;
      rec.body.hidden = false;
    }
    rec.foot.replaceChildren(...this.foot(m, versions, index, model, quoted));
    // Feedback detail panel.
    if (this.feedbackOpen?.id === m.id) {
      if (!rec.panel) rec.panel = this.feedbackPanel(m, this.feedbackOpen.rating);
      rec.panelSlot.replaceChildren(rec.panel);
    } else {
      rec.panel = null;
      rec.panelSlot.replaceChildren();
    }
  }

  /** Below an answer: its versions' pager, then "writing…" or the model's react buttons. */
  foot(m, versions, index, model, quoted) {
    const view = this.view;
    const out = [];
    if (versions.length > 1) {
      const prev = versions[index - 1];
      const next = versions[index + 1];
      out.push(
        h(
          "div",
          { class: "pager", "data-testid": "versions", role: "group", "aria-label": t("versions") },
          iconButton("left", t("previous_version"), {
            class: "icon-btn sm",
            "data-testid": "version-prev",
            "data-focus-key": `${m.id}:vprev`,
            disabled: !prev || !view.isParticipant,
            onclick: () => prev && view.select(prev),
          }),
          h("span", { class: "pager-text", text: `${index + 1}/${versions.length}` }),
          iconButton("right", t("next_version"), {
            class: "icon-btn sm",
            "data-testid": "version-next",
            "data-focus-key": `${m.id}:vnext`,
            disabled: !next || !view.isParticipant,
            onclick: () => next && view.select(next),
          }),
        ),
      );
    }
    if (m.status === "running") {
      out.push(h("span", { class: "typing-label" }, h("span", { class: "spinner", "aria-hidden": "true" }), h("span", { text: t("writing") })));
      return out;
    }
    const buttons = model.react_buttons || [];
    const actions = h("div", { class: "actions", role: "group", "aria-label": t("actions") });
    const key = (name) => `${m.id}:${name}`;
    if (buttons.includes("copy") && m.content) {
      const b = iconButton("copy", t("copy"), {
        "data-testid": "react-copy",
        "data-focus-key": key("copy"),
        onclick: async () => {
          const ok = await copyText(m.content);
          b.replaceChildren(icon(ok ? "check" : "copy"));
          b.classList.toggle("done", ok);
          if (!ok) toast(t("copy_failed"));
          setTimeout(() => {
            b.replaceChildren(icon("copy"));
            b.classList.remove("done");
          }, 1500);
        },
      });
      actions.append(b);
    }
    if (buttons.includes("quote") && m.content && view.canSend()) {
      actions.append(
        iconButton("quote", quoted ? t("unquote") : t("quote"), {
          "data-testid": "react-quote",
          "data-focus-key": key("quote"),
          "aria-pressed": String(quoted),
          onclick: () => view.composer.toggleQuote(m),
        }),
      );
    }
    if (
      buttons.includes("translate") &&
      m.content &&
      view.isParticipant &&
      view.app.can("Room_update_react_message")
    ) {
      actions.append(
        iconButton("translate", t("translate"), {
          "data-testid": "react-translate",
          "data-focus-key": key("translate"),
          disabled: m.translation?.status === "running",
          onclick: () => this.translate(m),
        }),
      );
    }
    if (buttons.includes("feedback") && view.app.can("Room_update_feedback") && m.status === "done") {
      const rating = m.feedback?.rating || 0;
      actions.append(
        iconButton("up", t("good_answer"), {
          "data-testid": "react-feedback-up",
          "data-focus-key": key("up"),
          "aria-pressed": String(rating === 1),
          class: `icon-btn${rating === 1 ? " on good" : ""}`,
          onclick: () => this.rate(m, 1),
        }),
        iconButton("down", t("bad_answer"), {
          "data-testid": "react-feedback-down",
          "data-focus-key": key("down"),
          "aria-pressed": String(rating === -1),
          class: `icon-btn${rating === -1 ? " on bad" : ""}`,
          onclick: () => this.rate(m, -1),
        }),
      );
    }
    if (buttons.includes("regenerate") && view.canSend()) {
      actions.append(
        iconButton("regenerate", t("regenerate"), {
          "data-testid": "react-regenerate",
          "data-focus-key": key("regen"),
          onclick: () => this.regenerate(m),
        }),
      );
    }
    if (this.canDelete(m)) {
      actions.append(
        iconButton("trash", t("delete_answer"), {
          "data-testid": "react-delete",
          "data-focus-key": key("delete"),
          class: "icon-btn danger-hover",
          onclick: () => view.deleteMessage(m, t("delete_answer_confirm")),
        }),
      );
    }
    out.push(actions);
    return out;
  }

  canDelete(m) {
    const view = this.view;
    if (view.isOwner) return true;
    if (!view.isParticipant) return false;
    const prompt = view.msgs.get(m.parent);
    return Boolean(prompt && prompt.author?.id === view.me.id);
  }

  /** While it streams, a slow-to-render answer waits a while before rendering again. */
  waiting(id, now) {
    const wait = this.renderCost.get(id);
    return Boolean(wait && wait.next > now && this.view.msgs.get(id)?.status === "running");
  }

  renderContent(id) {
    const m = this.view.msgs.get(id);
    const rec = this.els.get(id);
    if (!m || !rec || m.role !== "assistant") return;
    const started = performance.now();
    const text = m.content || "";
    if (rec.text !== text || rec.status !== m.status) {
      if (!text && m.status === "running") {
        rec.body.replaceChildren(
          h("span", { class: "dots", role: "status", "aria-label": t("writing") }, h("i"), h("i"), h("i")),
        );
      } else {
        renderMarkdown(rec.body, text);
        if (!text && m.status === "done") rec.body.append(h("p", { class: "muted", text: t("empty_answer") }));
        if (m.status !== "running") {
          decorateCitations(rec.body, m.citations, (file) => this.view.files.has(file));
        }
      }
      rec.text = text;
      rec.status = m.status;
      rec.body.classList.toggle("streaming", m.status === "running" && Boolean(text));
    }
    const tr = m.translation;
    const ttext = tr?.content || "";
    if (tr && rec.ttext !== ttext) {
      if (!ttext && tr.status === "running") {
        rec.trans.replaceChildren(
          h("span", { class: "dots", role: "status", "aria-label": t("translating") }, h("i"), h("i"), h("i")),
        );
      } else renderMarkdown(rec.trans, ttext);
      rec.ttext = ttext;
    }
    if (tr) rec.trans.classList.toggle("streaming", tr.status === "running" && Boolean(ttext));
    const cost = performance.now() - started;
    if (cost > 12) this.renderCost.set(id, { next: performance.now() + cost * 4 });
    else this.renderCost.delete(id);
  }

  feedbackPanel(m, rating) {
    const view = this.view;
    const flags = rating > 0 ? POSITIVE : NEGATIVE;
    const have = new Set(m.feedback?.flags || []);
    const comment = h("textarea", {
      rows: 2,
      class: "feedback-comment",
      placeholder: t("feedback_comment"),
      "aria-label": t("feedback_comment"),
      "data-testid": "feedback-comment",
      value: m.feedback?.comment || "",
    });
    const boxes = flags.map((flag) =>
      h("input", { type: "checkbox", value: flag, "data-testid": `flag-${flag}`, checked: have.has(flag) }),
    );
    const close = () => {
      this.feedbackOpen = null;
      view.structureDirty = true;
      view.schedule();
    };
    const form = h(
      "form",
      {
        class: `feedback-detail ${rating > 0 ? "good" : "bad"}`,
        "data-testid": "feedback-detail",
        "aria-label": t("feedback_detail"),
        onsubmit: async (e) => {
          e.preventDefault();
          const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
          try {
            const updated = await api.post(`/app/messages/${m.id}/feedback`, {
              rating,
              flags: chosen,
              comment: comment.value.trim(),
            });
            view.merge(updated, true);
            toast(t("feedback_thanks"), "ok", 3000);
            close();
          } catch (err) {
            toast(err.message);
          }
        },
        onkeydown: (e) => {
          if (e.key === "Escape") {
            e.preventDefault();
            close();
          }
        },
      },
      h("p", { class: "panel-title", text: rating > 0 ? t("feedback_good_title") : t("feedback_bad_title") }),
      h(
        "div",
        { class: "flags" },
        flags.map((flag, i) => h("label", { class: "flag-chip" }, boxes[i], h("span", { text: t(`flag_${flag}`) }))),
      ),
      comment,
      h(
        "div",
        { class: "panel-actions" },
        h("button", { type: "button", class: "secondary", text: t("cancel"), onclick: close }),
        h("button", { type: "submit", "data-testid": "feedback-submit", text: t("submit") }),
      ),
    );
    queueMicrotask(() => boxes[0]?.focus({ preventScroll: true }));
    return form;
  }

  // --- actions -------------------------------------------------------------------------------
  async regenerate(m) {
    try {
      this.view.merge(await api.post(`/app/messages/${m.id}/regenerate`, {}), true);
    } catch (err) {
      toast(err.message);
    }
  }

  async translate(m) {
    const view = this.view;
    if (m.translation?.status === "done" && m.translation.lang === lang() && m.translation.content) {
      this.showOriginal.delete(m.id);
      view.structureDirty = true;
      view.dirty.add(m.id);
      view.schedule();
      return;
    }
    // Show it running at once; the stream's events (maybe faster than this POST) take over.
    const local = view.msgs.get(m.id);
    const before = local?.translation ?? null;
    if (local) {
      local.translation = { lang: lang(), content: "", status: "running" };
      view.stream.tseq.delete(m.id);
      this.showOriginal.delete(m.id);
      view.structureDirty = true;
      view.dirty.add(m.id);
      view.schedule();
    }
    try {
      view.merge(await api.post(`/app/messages/${m.id}/translate`, { lang: lang() }), true);
    } catch (err) {
      toast(err.message);
      if (local && local.translation?.status === "running" && !local.translation.content) {
        local.translation = before;
        view.structureDirty = true;
        view.dirty.add(m.id);
        view.schedule();
      }
    }
  }

  async rate(m, rating) {
    const view = this.view;
    const current = m.feedback?.rating || 0;
    const next = current === rating ? 0 : rating;
    try {
      const updated = await api.post(`/app/messages/${m.id}/feedback`, { rating: next });
      view.merge(updated, true);
      this.feedbackOpen = next !== 0 && view.app.can("Room_update_detail_feedback") ? { id: m.id, rating: next } : null;
      const rec = this.els.get(m.id);
      if (rec) rec.panel = null;
      view.structureDirty = true;
      view.schedule();
    } catch (err) {
      toast(err.message);
    }
  }
}
