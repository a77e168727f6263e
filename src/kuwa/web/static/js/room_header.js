// An open room's part of the app's top bar: who is here now (presence avatars) and the room's
// buttons — export, import, share (the owner) or my role's badge — with the dialogs they open.
import { avatar, h, icon, toast } from "./dom.js";
import { t } from "./i18n.js";
import { openShare } from "./share.js";
import { shareLinkSection } from "./sharelink.js";
import { exportMenu, openImport, pathIcon } from "./transfer.js";

const EXPORT = "Room_read_export_chat";

export class RoomHeader {
  constructor(view) {
    this.view = view;
    this.presence = []; // the users in the room now
    this.exportEl = null;
    this.importBtn = null;
    this.shareDialog = null; // {update(room)} while the share dialog is open
  }

  render() {
    const view = this.view;
    const room = view.room;
    this.renderPresence();
    const actions = [];
    const blinded = room?.arena && !room.revealed; // no export before the vote
    if (room && view.app.can(EXPORT) && !blinded) {
      this.exportEl ??= exportMenu(view.id);
      actions.push(this.exportEl);
    }
    if (room && view.canImport()) {
      this.importBtn ??= h(
        "button",
        {
          type: "button",
          class: "secondary bar-btn",
          "data-testid": "import",
          "aria-haspopup": "dialog",
          title: t("import"),
          onclick: () => this.openImport(),
        },
        pathIcon("upload", 16),
        h("span", { class: "bar-btn-text", text: t("import") }),
      );
      actions.push(this.importBtn);
    }
    if (room && view.isOwner) {
      actions.push(
        h(
          "button",
          {
            type: "button",
            class: "secondary bar-btn",
            "data-testid": "share",
            "aria-haspopup": "dialog",
            onclick: () => this.openShare(),
          },
          icon("share", 16),
          h("span", { class: "bar-btn-text", text: t("share") }),
        ),
      );
    } else if (room && view.role !== "owner") {
      actions.push(h("span", { class: "role-badge", text: t(`role_${view.role}`) }));
    }
    view.app.bar.actions.replaceChildren(...actions);
  }

  setPresence(users) {
    this.presence = users;
    this.renderPresence();
  }

  renderPresence() {
    const view = this.view;
    const users = this.presence || [];
    const box = h("div", { class: "presence", "data-testid": "presence", "aria-label": t("here_now") });
    if (users.length > 1 || (users.length === 1 && users[0].id !== view.me.id)) {
      const meId = view.me.id;
      const ordered = [...users].sort((a, b) => (a.id === meId) - (b.id === meId));
      for (const u of ordered.slice(0, 5)) {
        const you = u.id === meId;
        const a = avatar(u.name, "", `u${u.id}`, "sm");
        a.removeAttribute("aria-hidden");
        a.setAttribute("role", "img");
        a.setAttribute("aria-label", you ? t("you_name", { name: u.name }) : u.name);
        a.title = you ? t("you_name", { name: u.name }) : u.name;
        a.dataset.userId = String(u.id);
        box.append(a);
      }
      if (ordered.length > 5) box.append(h("span", { class: "presence-more", text: `+${ordered.length - 5}` }));
    }
    view.app.bar.presence.replaceChildren(box);
  }

  /** Leaving the room: the top bar's room parts go. */
  clear() {
    this.view.app.bar.presence.replaceChildren();
    this.view.app.bar.actions.replaceChildren();
  }

  openShare() {
    const view = this.view;
    const members = openShare(view.app, view.room, (room) => view.onRoom(room));
    const dialogs = document.querySelectorAll('dialog[data-testid="share-dialog"]');
    const dlg = dialogs[dialogs.length - 1];
    const link = shareLinkSection(view.room, (room) => view.onRoom(room));
    dlg?.append(link.el);
    this.shareDialog = {
      update(room) {
        members.update(room);
        link.update(room);
      },
    };
  }

  openImport() {
    const view = this.view;
    openImport(view.id, {
      onAttempt: () => view.reloadRoom(),
      onImported: ({ pending }) => {
        toast(t("imported", { n: pending }), "ok", 5000);
        view.forceBottom = true;
        view.app.sidebar.bump(view.id);
      },
    });
  }
}
