// The left sidebar: "New chat", room search, the room list (rename, delete).
import { api } from "./api.js";
import { avatar, confirmDialog, h, icon, iconButton, relativeTime, toast } from "./dom.js";
import { lang, t } from "./i18n.js";
import { modelInfo } from "./store.js";

export class Sidebar {
  constructor(app) {
    this.app = app;
    this.rooms = [];
    this.query = "";
    this.renaming = null;
    this.loadSeq = 0;
    this.list = h("ul", { class: "room-list", role: "list" });
    this.search = h("input", {
      type: "search",
      class: "side-search",
      placeholder: t("search_chats"),
      "aria-label": t("search_chats"),
      "data-testid": "room-search",
      autocomplete: "off",
    });
    let timer = 0;
    this.search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.query = this.search.value.trim();
        this.load();
      }, 200);
    });
    const canCreate = app.can("Room_update_new_chat");
    this.el = h(
      "aside",
      { class: "sidebar", id: "sidebar", "aria-label": t("chats") },
      h(
        "div",
        { class: "side-top" },
        canCreate &&
          h(
            "a",
            {
              class: "button new-chat",
              href: "/",
              "data-testid": "new-chat",
              onclick: (e) => {
                if (e.metaKey || e.ctrlKey || e.shiftKey) return;
                e.preventDefault();
                app.navigate("/");
              },
            },
            icon("plus"),
            h("span", { text: t("new_chat") }),
          ),
        iconButton("sidebar", t("hide_sidebar"), {
          class: "icon-btn side-collapse",
          onclick: () => app.toggleSidebar(false),
        }),
      ),
      h("div", { class: "side-search-wrap" }, icon("search", 16), this.search),
      h("nav", { class: "side-rooms", "aria-label": t("chats") }, this.list),
      h(
        "div",
        { class: "side-foot" },
        avatar(app.config.me?.name || "", "", `u${app.config.me?.id}`, "sm"),
        h("span", { class: "side-me", text: app.config.me?.name || "" }),
      ),
    );
  }

  async load() {
    const seq = ++this.loadSeq;
    try {
      const q = this.query ? `?q=${encodeURIComponent(this.query)}` : "";
      const data = await api.get(`/app/rooms${q}`);
      if (seq !== this.loadSeq) return;
      this.rooms = data.rooms || [];
      this.render();
    } catch (err) {
      if (seq === this.loadSeq) toast(err.message);
    }
  }

  /** Update one room's summary in place (title from the first prompt, models…). */
  patch(room) {
    const found = this.rooms.find((r) => r.id === room.id);
    if (found) {
      for (const key of ["title", "models", "updated"]) if (key in room) found[key] = room[key];
      this.render();
    } else {
      this.load();
    }
  }

  /** A message was sent: the room moves to the top (its title arrives with a `room` event). */
  bump(id) {
    const room = this.rooms.find((r) => r.id === id);
    if (!room) {
      this.load();
      return;
    }
    room.updated = Date.now() / 1000;
    this.rooms = [room, ...this.rooms.filter((r) => r !== room)];
    this.render();
  }

  remove(id) {
    this.rooms = this.rooms.filter((r) => r.id !== id);
    this.render();
  }

  render() {
    const active = this.app.roomId;
    const focused = document.activeElement;
    const focusKey = focused && this.list.contains(focused) ? focused.dataset.focusKey : null;
    const items = this.rooms.map((room) => this.item(room, room.id === active));
    if (!items.length) {
      items.push(
        h("li", { class: "side-empty", text: this.query ? t("no_chats_found") : t("no_chats_yet") }),
      );
    }
    this.list.replaceChildren(...items);
    if (focusKey) this.list.querySelector(`[data-focus-key="${focusKey}"]`)?.focus();
  }

  item(room, active) {
    const title = room.title || t("untitled");
    if (this.renaming === room.id) return this.renameItem(room);
    const link = h(
      "a",
      {
        class: "room-link",
        href: `/rooms/${room.id}`,
        "aria-current": active ? "page" : null,
        "data-focus-key": `open-${room.id}`,
        onclick: (e) => {
          if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
          e.preventDefault();
          this.app.navigate(`/rooms/${room.id}`);
        },
      },
      h("span", { class: "room-title", text: title }),
      h(
        "span",
        { class: "room-meta" },
        h(
          "span",
          { class: "room-models" },
          (room.models || []).slice(0, 4).map((code) => {
            const m = modelInfo(this.app, code);
            return avatar(m.name, m.image, code, "xs");
          }),
        ),
        room.role && room.role !== "owner"
          ? h("span", { class: "room-badge", text: t(`role_${room.role}`) })
          : null,
        h("span", { class: "room-time", text: relativeTime(room.updated, lang()) }),
      ),
    );
    const owner = room.owner || room.role === "owner";
    const actions = owner
      ? h(
          "span",
          { class: "room-actions" },
          iconButton("edit", t("rename_chat"), {
            "data-testid": "rename-room",
            "data-focus-key": `rename-${room.id}`,
            onclick: () => {
              this.renaming = room.id;
              this.render();
            },
          }),
          this.app.can("Room_delete_chatroom") &&
            iconButton("trash", t("delete_chat"), {
              "data-testid": "delete-room",
              "data-focus-key": `delete-${room.id}`,
              onclick: () => this.deleteRoom(room),
            }),
        )
      : null;
    return h(
      "li",
      { class: `room-item${active ? " active" : ""}`, "data-testid": `room-${room.id}` },
      link,
      actions,
    );
  }

  renameItem(room) {
    const input = h("input", {
      class: "rename-input",
      value: room.title || "",
      "aria-label": t("chat_title"),
      "data-testid": "rename-input",
      maxlength: 200,
    });
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      this.renaming = null;
      const title = input.value.trim();
      if (save && title && title !== room.title) {
        room.title = title;
        this.render();
        try {
          const updated = await api.post(`/app/rooms/${room.id}`, { title });
          this.app.roomChanged(updated);
        } catch (err) {
          toast(err.message);
          this.load();
        }
      } else {
        this.render();
      }
      this.list.querySelector(`[data-focus-key="rename-${room.id}"]`)?.focus();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.isComposing) {
        e.preventDefault();
        finish(true);
      } else if (e.key === "Escape") {
        e.preventDefault();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
    queueMicrotask(() => {
      input.focus();
      input.select();
    });
    return h(
      "li",
      { class: "room-item renaming", "data-testid": `room-${room.id}` },
      input,
    );
  }

  async deleteRoom(room) {
    const ok = await confirmDialog(
      t("delete_chat_confirm", { title: room.title || t("untitled"), n: this.app.config.trash_days ?? 30 }),
      t("delete"),
    );
    if (!ok) return;
    try {
      await api.post(`/app/rooms/${room.id}/delete`, {});
      this.remove(room.id);
      if (this.app.roomId === room.id) this.app.navigate("/", { replace: true });
    } catch (err) {
      toast(err.message);
    }
  }
}
