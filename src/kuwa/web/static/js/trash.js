// The trash (/trash, inside the chat app): the rooms and answers you deleted, kept for the
// server's number of days; restore one, or delete it for good. The sidebar's "Trash" link
// opens it. Text from rooms and answers goes in as text, never as markup.
import { api } from "./api.js";
import { avatar, confirmDialog, h, icon, toast } from "./dom.js";
import { lang, t } from "./i18n.js";
import { modelInfo } from "./store.js";

export function isTrashPath(path = location.pathname) {
  return /^\/trash\/?$/.test(path);
}

/** The sidebar's "Trash" link, at its foot (added once). */
export function ensureTrashLink(app) {
  const side = app.sidebar?.el;
  if (!side || side.querySelector('[data-testid="open-trash"]')) return;
  const link = h(
    "a",
    {
      class: "side-link trash-link",
      href: "/trash",
      "data-testid": "open-trash",
      onclick: (e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey) return;
        e.preventDefault();
        app.navigate("/trash");
      },
    },
    icon("trash", 16),
    h("span", { text: t("trash") }),
  );
  side.querySelector(".side-foot")?.before(h("div", { class: "side-links side-links-foot" }, link));
  markTrashLink(app, isTrashPath());
}

function markTrashLink(app, on) {
  const link = app.sidebar?.el?.querySelector('[data-testid="open-trash"]');
  if (!link) return;
  link.classList.toggle("active", on);
  if (on) link.setAttribute("aria-current", "page");
  else link.removeAttribute("aria-current");
}

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString(lang(), { dateStyle: "medium", timeStyle: "short" });
}

function daysLeft(purgeAt) {
  return Math.max(0, Math.ceil((purgeAt * 1000 - Date.now()) / 86_400_000));
}

export class TrashView {
  constructor(app) {
    this.app = app;
    this.data = null;
  }

  mount(container) {
    this.app.setTitle(t("trash"));
    markTrashLink(this.app, true);
    this.list = h("div", { class: "trash-list", "aria-live": "polite", "data-testid": "trash-list" });
    this.intro = h("p", { class: "muted", "data-testid": "trash-intro" });
    this.el = h(
      "div",
      { class: "arena-page trash-page" },
      h("section", { class: "trash-head" }, h("h2", { text: t("trash") }), this.intro),
      this.list,
    );
    container.replaceChildren(this.el);
    this.load();
  }

  unmount() {
    markTrashLink(this.app, false);
  }

  async load() {
    try {
      this.data = await api.get("/app/trash");
    } catch (err) {
      toast(err.message);
      return;
    }
    await this.app.loadModels();
    this.render();
  }

  render() {
    const { rooms = [], messages = [], days = 30 } = this.data || {};
    this.intro.textContent = t("trash_intro", { n: days });
    if (!rooms.length && !messages.length) {
      this.list.replaceChildren(h("p", { class: "trash-empty muted", text: t("trash_empty") }));
      return;
    }
    const section = (title, items, testid) =>
      items.length
        ? h(
            "section",
            { class: "trash-section", "data-testid": testid },
            h("h3", { text: title }),
            h("ul", { class: "trash-items", role: "list" }, items),
          )
        : null;
    this.list.replaceChildren(
      ...[
        section(t("trash_rooms"), rooms.map((r) => this.roomItem(r)), "trash-rooms"),
        section(t("trash_answers"), messages.map((m) => this.messageItem(m)), "trash-messages"),
      ].filter(Boolean),
    );
  }

  item(testid, main, purgeAt, onRestore, onPurge) {
    const restore = h("button", { type: "button", class: "secondary", "data-testid": "trash-restore" },
      icon("undo", 16), h("span", { text: t("trash_restore") }));
    const purge = h("button", { type: "button", class: "danger-outline", "data-testid": "trash-purge" },
      icon("trash", 16), h("span", { text: t("trash_purge") }));
    restore.addEventListener("click", () => this.act(restore, onRestore));
    purge.addEventListener("click", async () => {
      if (await confirmDialog(t("trash_purge_confirm"), t("trash_purge"))) this.act(purge, onPurge);
    });
    return h(
      "li",
      { class: "trash-item", "data-testid": testid },
      h("div", { class: "trash-main" }, main,
        h("span", { class: "trash-when small muted", text: t("trash_purged_in", { n: daysLeft(purgeAt), date: when(purgeAt) }) })),
      h("div", { class: "trash-actions" }, restore, purge),
    );
  }

  async act(button, work) {
    button.disabled = true;
    try {
      await work();
      await this.load();
      this.app.sidebar.load();
    } catch (err) {
      toast(err.message);
      button.disabled = false;
    }
  }

  roomItem(room) {
    const models = room.models.map((code) => modelInfo(this.app, code));
    const main = h(
      "div",
      { class: "trash-what" },
      h("span", { class: "trash-avatars", "aria-hidden": "true" }, models.map((m, i) => avatar(m.name, m.image, room.models[i], "xs"))),
      h("span", { class: "trash-title", text: room.title || t("untitled") }),
      h("span", { class: "small muted", text: t("trash_deleted_at", { date: when(room.deleted) }) }),
    );
    return this.item(
      `trash-room-${room.id}`,
      main,
      room.purge_at,
      async () => {
        await api.post(`/app/trash/rooms/${room.id}/restore`, {});
        toast(t("trash_restored", { title: room.title || t("untitled") }), "ok", 3000);
      },
      () => api.post(`/app/trash/rooms/${room.id}/purge`, {}),
    );
  }

  messageItem(m) {
    const model = m.model ? modelInfo(this.app, m.model) : null;
    const main = h(
      "div",
      { class: "trash-what" },
      model ? avatar(model.name, model.image, m.model, "xs") : null,
      h("span", { class: "trash-title", text: m.excerpt || "…" }),
      h("a", {
        class: "small",
        href: `/rooms/${m.room.id}`,
        text: t("trash_in_room", { title: m.room.title || t("untitled") }),
        onclick: (e) => {
          if (e.metaKey || e.ctrlKey || e.shiftKey) return;
          e.preventDefault();
          this.app.navigate(`/rooms/${m.room.id}`);
        },
      }),
    );
    return this.item(
      `trash-message-${m.id}`,
      main,
      m.purge_at,
      () => api.post(`/app/trash/messages/${m.id}/restore`, {}),
      () => api.post(`/app/trash/messages/${m.id}/purge`, {}),
    );
  }
}
