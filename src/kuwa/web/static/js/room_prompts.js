// A room's prompts: one record (DOM nodes and what they show) per prompt, its head (author,
// time), foot (branches' pager, copy, edit, delete) and the editor that sends an edited prompt
// as a new branch. Owned by a RoomView (room.js), which holds the messages.
import { api } from "./api.js";
import { avatar, h, icon, iconButton, relativeTime, toast } from "./dom.js";
import { lang, t } from "./i18n.js";
import { copyText } from "./markdown.js";

export class Prompts {
  constructor(view) {
    this.view = view;
    this.els = new Map(); // prompt id → its record
    this.editing = null; // the id of the prompt being edited
  }

  forget(id) {
    this.els.delete(id);
  }

  record(p) {
    let rec = this.els.get(p.id);
    if (rec) return rec;
    const text = h("div", { class: "prompt-text" });
    const head = h("div", { class: "prompt-head" });
    const foot = h("div", { class: "prompt-foot" });
    const editorSlot = h("div", { class: "editor-slot" });
    const el = h(
      "div",
      {
        class: "prompt",
        tabindex: "0",
        "data-testid": `prompt-${p.id}`,
        "data-id": String(p.id),
        "data-prompt": String(p.id),
      },
      head,
      text,
      editorSlot,
      foot,
    );
    const wrap = h("div", { class: "turn-prompt" }, el);
    rec = { wrap, el, text, head, foot, editorSlot, sig: "", content: null };
    this.els.set(p.id, rec);
    return rec;
  }

  /** `asked`: the models the prompt went to (their columns), shown in its head when the
   *  room has more than one, so the bubble reads as asked of all of them. */
  update(rec, p, branches, asked = []) {
    const view = this.view;
    if (rec.content !== p.content) {
      rec.text.textContent = p.content;
      rec.content = p.content;
      rec.el.classList.toggle("long", p.content.split("\n").length > 14 || p.content.length > 1400);
    }
    const editing = this.editing === p.id;
    const index = branches.findIndex((b) => b.id === p.id);
    const shared = (view.room?.members || []).length > 0 || view.role !== "owner" || p.author?.id !== view.me.id;
    const askedCodes = asked.map((m) => m.code);
    const sig = JSON.stringify([index, branches.length, editing, view.role, shared, p.author?.name, rec.el.classList.contains("expanded"), askedCodes]);
    rec.text.hidden = editing;
    if (sig === rec.sig) return;
    rec.sig = sig;
    const mine = p.author?.id === view.me.id;
    rec.head.replaceChildren(
      ...(shared
        ? [
            avatar(p.author?.name || "?", "", `u${p.author?.id}`, "xs"),
            h("span", {
              class: "prompt-author",
              text: mine ? t("you_name", { name: p.author?.name || "" }) : p.author?.name || "",
            }),
          ]
        : []),
      ...(asked.length > 1 ? [askedEl(asked)] : []),
      h("time", {
        class: "prompt-time",
        datetime: new Date((p.created || 0) * 1000).toISOString(),
        title: new Date((p.created || 0) * 1000).toLocaleString(lang()),
        text: relativeTime(p.created, lang()),
      }),
    );
    const out = [];
    if (branches.length > 1) {
      const prev = branches[index - 1];
      const next = branches[index + 1];
      out.push(
        h(
          "div",
          { class: "pager", "data-testid": "branches", role: "group", "aria-label": t("branches") },
          iconButton("left", t("previous_branch"), {
            class: "icon-btn sm",
            "data-testid": "branch-prev",
            "data-focus-key": `${p.id}:bprev`,
            disabled: !prev || !view.isParticipant,
            onclick: () => prev && view.select(prev),
          }),
          h("span", { class: "pager-text", text: `${index + 1}/${branches.length}` }),
          iconButton("right", t("next_branch"), {
            class: "icon-btn sm",
            "data-testid": "branch-next",
            "data-focus-key": `${p.id}:bnext`,
            disabled: !next || !view.isParticipant,
            onclick: () => next && view.select(next),
          }),
        ),
      );
    }
    const actions = h("div", { class: "actions", role: "group", "aria-label": t("actions") });
    if (rec.el.classList.contains("long")) {
      const expanded = rec.el.classList.contains("expanded");
      actions.append(
        h("button", {
          type: "button",
          class: "link small-link",
          "aria-expanded": String(expanded),
          text: expanded ? t("show_less") : t("show_more"),
          onclick: () => {
            rec.el.classList.toggle("expanded");
            rec.sig = "";
            view.structureDirty = true;
            view.schedule();
          },
        }),
      );
    }
    const copyBtn = iconButton("copy", t("copy"), {
      "data-testid": "copy-prompt",
      "data-focus-key": `${p.id}:copy`,
      onclick: async () => {
        const ok = await copyText(p.content);
        copyBtn.replaceChildren(icon(ok ? "check" : "copy"));
        setTimeout(() => copyBtn.replaceChildren(icon("copy")), 1500);
      },
    });
    actions.append(copyBtn);
    if (view.canSend() && !editing) {
      actions.append(
        iconButton("edit", t("edit_prompt"), {
          "data-testid": "edit-prompt",
          "data-focus-key": `${p.id}:edit`,
          onclick: () => this.startEdit(p),
        }),
      );
    }
    if (view.isOwner || (view.isParticipant && mine)) {
      actions.append(
        iconButton("trash", t("delete_prompt"), {
          "data-testid": "delete-prompt",
          "data-focus-key": `${p.id}:delete`,
          class: "icon-btn danger-hover",
          onclick: () => view.deleteMessage(p, t("delete_prompt_confirm")),
        }),
      );
    }
    out.push(actions);
    rec.foot.replaceChildren(...out);
    if (editing) {
      if (!rec.editor) rec.editor = this.editor(p);
      rec.editorSlot.replaceChildren(rec.editor);
    } else {
      rec.editor = null;
      rec.editorSlot.replaceChildren();
    }
  }

  startEdit(p) {
    this.editing = p.id;
    this.view.structureDirty = true;
    this.view.schedule();
  }

  editor(p) {
    const view = this.view;
    const area = h("textarea", {
      class: "edit-area",
      value: p.content,
      rows: Math.min(12, Math.max(2, p.content.split("\n").length)),
      "aria-label": t("edit_prompt"),
      "data-testid": "edit-area",
    });
    const cancel = () => {
      this.editing = null;
      view.structureDirty = true;
      view.schedule();
    };
    const submit = async () => {
      const content = area.value;
      if (!content.trim()) return;
      // The new branch goes to the models that answered the original prompt.
      const answered = new Set(
        [...view.msgs.values()].filter((m) => m.role === "assistant" && m.parent === p.id).map((m) => m.model),
      );
      const body = { content, parent: p.parent ?? null };
      const all = view.room?.models || [];
      if (answered.size && answered.size < all.length) body.models = [...answered];
      try {
        const res = await api.post(`/app/rooms/${view.id}/messages`, body);
        this.editing = null;
        view.accept(res);
      } catch (err) {
        toast(err.message);
      }
    };
    area.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        submit();
      } else if (e.key === "Escape") {
        e.preventDefault();
        cancel();
      }
    });
    queueMicrotask(() => {
      area.focus({ preventScroll: true });
      area.setSelectionRange(area.value.length, area.value.length);
    });
    return h(
      "div",
      { class: "editor" },
      area,
      h(
        "div",
        { class: "panel-actions" },
        h("span", { class: "hint", text: t("edit_hint") }),
        h("button", { type: "button", class: "secondary", text: t("cancel"), onclick: cancel }),
        h("button", { type: "button", "data-testid": "edit-submit", text: t("send"), onclick: submit }),
      ),
    );
  }
}

/** The avatars of the models a prompt was sent to, with their names for screen readers. */
function askedEl(models) {
  const names = models.map((m) => m.name).join(", ");
  return h(
    "span",
    { class: "prompt-asked", "data-testid": "prompt-asked", title: t("sent_to_models", { names }), "aria-label": t("sent_to_models", { names }) },
    h("span", { class: "prompt-asked-text", text: t("asked_n_models", { n: models.length }) }),
    h("span", { class: "prompt-asked-avatars", "aria-hidden": "true" }, models.map((m) => avatar(m.name, m.image, m.code, "xs"))),
  );
}
