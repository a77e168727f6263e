// The bot store (/store, inside the chat app): browse, search and sort the bots you may see,
// chat with one, and create, edit, clone, delete, export (.bot) and import bots. Also the
// helpers that let the picker and rooms show bots (`bot:ID` codes) like models.
import { ApiError, api } from "./api.js";
import { arenaModel } from "./arena.js";
import { knowledgeField } from "./bot_knowledge.js";
import { avatar, confirmDialog, h, icon, iconButton, toast } from "./dom.js";
import { t } from "./i18n.js";
import { pathIcon } from "./transfer.js";

const SORT_KEY = "kuwa.store.sort";
const CHAINED_KEY = "kuwa.picker.chained";
const MAX_AVATAR_BYTES = 500 * 1024;
const CREATE = {
  system: "tab_Manage",
  community: "Store_create_community_bot",
  group: "Store_create_group_bot",
  private: "Store_create_private_bot",
};
const VISIBILITIES = ["system", "community", "group", "private"];

// --- bots for the picker and rooms ------------------------------------------------------------
/** The bots of /app/models (app.bots: code → bot), fetched once unless forced. */
export function loadBots(app, force = false) {
  if (!app.bots) app.bots = new Map();
  if (!app.botsPromise || force) {
    app.botsPromise = api
      .get("/app/models")
      .then((data) => {
        app.bots = new Map((data.bots || []).map((b) => [b.code, b]));
        app.botsLoaded = true;
      })
      .catch(() => {
        app.botsLoaded = true;
      });
  }
  return app.botsPromise;
}

/** A bot in the shape rooms use for a model (name, image, react buttons of its base). */
export function botAsModel(app, bot) {
  const base = app.models.get(bot.base);
  return {
    code: bot.code,
    name: bot.name,
    description: bot.description || "",
    image: bot.avatar || "",
    react_buttons: bot.react_buttons?.length ? bot.react_buttons : base?.react_buttons || ["copy", "quote"],
    live: bot.live ?? base?.live ?? false,
    bot,
  };
}

/** What to show for a room's model code: a blinded arena side, a bot, a model, or the bare code. */
export function modelInfo(app, code) {
  const side = arenaModel(code);
  if (side) return side;
  const bot = code?.startsWith?.("bot:") ? app.bots?.get(code) : null;
  if (bot) return botAsModel(app, bot);
  return (
    app.models.get(code) || {
      code,
      name: code,
      description: "",
      image: "",
      react_buttons: ["copy", "quote"],
      live: false,
    }
  );
}

export function visibilityBadge(visibility) {
  return h("span", { class: `vis-badge vis-${visibility}`, text: t(`vis_${visibility}`) });
}

export function isStorePath(path = location.pathname) {
  return /^\/store\/?$/.test(path);
}

/** Start a room with these codes and open it. */
export async function startRoom(app, codes) {
  const chained = localStorage.getItem(CHAINED_KEY) !== "false";
  const room = await api.post("/app/rooms", { models: codes, chained });
  app.sidebar.load();
  app.navigate(`/rooms/${room.id}`, { room });
}

// --- Modelfile quick check ----------------------------------------------------------------------
/** The line of an unclosed `"""` block, or 0 when every block is closed. */
export function unclosedTriple(text) {
  let open = 0;
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\n") line++;
    else if (c === '"' && text.startsWith('"""', i)) {
      open = open ? 0 : line;
      i += 2;
    }
  }
  return open;
}

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) return meta.content;
  const m = document.cookie.match(/(?:^|;\s*)kuwa_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

// --- the store page -----------------------------------------------------------------------------
export class StoreView {
  constructor(app) {
    this.app = app;
    this.bots = [];
    this.loaded = false;
    this.query = "";
    this.sort = localStorage.getItem(SORT_KEY) || "popular";
  }

  mount(container) {
    this.app.setTitle(t("store"));
    this.app.shell.dataset.view = "store";
    this.list = h("div", { class: "store-list", "data-testid": "store-list", "aria-live": "polite" });
    this.searchInput = h("input", {
      type: "search",
      placeholder: t("search_bots"),
      "aria-label": t("search_bots"),
      "data-testid": "store-search",
      autocomplete: "off",
      oninput: () => {
        this.query = this.searchInput.value.trim().toLowerCase();
        this.render();
      },
    });
    const sortSelect = h(
      "select",
      {
        "aria-label": t("sort_by"),
        "data-testid": "store-sort",
        onchange: () => {
          this.sort = sortSelect.value;
          localStorage.setItem(SORT_KEY, this.sort);
          this.render();
        },
      },
      ["popular", "newest", "name"].map((key) =>
        h("option", { value: key, text: t(`sort_${key}`), selected: key === this.sort }),
      ),
    );
    const canCreate = this.creatable().length > 0;
    this.fileInput = h("input", {
      type: "file",
      accept: ".bot,multipart/related",
      hidden: true,
      "data-testid": "import-bot-file",
      onchange: () => this.importFile(),
    });
    this.el = h(
      "div",
      { class: "picker store" },
      h(
        "div",
        { class: "picker-head store-head" },
        h(
          "div",
          {},
          h("h2", { class: "picker-title", text: t("store_title") }),
          h("p", { class: "muted", text: t("store_subtitle") }),
        ),
        canCreate
          ? h(
              "div",
              { class: "store-actions" },
              h(
                "button",
                {
                  type: "button",
                  class: "secondary",
                  "data-testid": "import-bot",
                  onclick: () => this.fileInput.click(),
                },
                pathIcon("upload", 16),
                h("span", { text: t("import_bot") }),
              ),
              h(
                "button",
                { type: "button", "data-testid": "new-bot", onclick: () => this.openEditor(null) },
                icon("plus", 16),
                h("span", { text: t("new_bot") }),
              ),
              this.fileInput,
            )
          : null,
      ),
      h(
        "div",
        { class: "picker-tools" },
        h("div", { class: "search-wrap" }, icon("search", 16), this.searchInput),
        h("label", { class: "sort" }, h("span", { text: t("sort_by") }), sortSelect),
      ),
      this.list,
    );
    container.replaceChildren(this.el);
    this.render();
    this.load();
    this.app.loadModels();
  }

  unmount() {
    this.closed = true;
  }

  async load() {
    try {
      const data = await api.get("/app/bots");
      if (this.closed) return;
      this.bots = data.bots || [];
    } catch (err) {
      toast(err.message);
    }
    this.loaded = true;
    this.render();
  }

  creatable() {
    return VISIBILITIES.filter((v) => this.app.can(CREATE[v]));
  }

  ordered() {
    const q = this.query;
    const shown = q
      ? this.bots.filter((b) =>
          [b.name, b.description, b.owner].some((v) => String(v || "").toLowerCase().includes(q)),
        )
      : [...this.bots];
    if (this.sort === "name") {
      shown.sort((a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: "base" }));
    } else if (this.sort === "newest") {
      shown.sort((a, b) => (b.created || 0) - (a.created || 0) || b.id - a.id);
    } else {
      shown.sort((a, b) => (b.uses || 0) - (a.uses || 0) || b.id - a.id);
    }
    return shown;
  }

  render() {
    if (!this.list) return;
    if (!this.loaded) {
      this.list.replaceChildren(
        h(
          "div",
          { class: "model-grid" },
          Array.from({ length: 3 }, () => h("div", { class: "model-card skeleton", "aria-hidden": "true" })),
        ),
      );
      return;
    }
    const bots = this.ordered();
    const groups = [
      ["mine", bots.filter((b) => b.mine)],
      ["system", bots.filter((b) => !b.mine && b.visibility === "system")],
      ["community", bots.filter((b) => !b.mine && b.visibility === "community")],
      ["group", bots.filter((b) => !b.mine && b.visibility === "group")],
      ["private", bots.filter((b) => !b.mine && b.visibility === "private")],
    ];
    // System, Community, Group first; your own bots last (as the store's tabs in Kuwa).
    groups.push(groups.shift());
    const sections = groups
      .filter(([, list]) => list.length)
      .map(([key, list]) =>
        h(
          "section",
          { class: "store-section", "data-testid": `store-section-${key}`, "aria-label": t(`section_${key}`) },
          h("h3", { class: "store-section-title" }, h("span", { text: t(`section_${key}`) }), h("span", { class: "count", text: String(list.length) })),
          h("div", { class: "model-grid bot-grid" }, list.map((b) => this.card(b))),
        ),
      );
    if (!sections.length) {
      sections.push(h("p", { class: "empty", text: this.bots.length ? t("no_bots_found") : t("no_bots") }));
    }
    this.list.replaceChildren(...sections);
  }

  card(b) {
    const canChat = this.app.can("Room_update_new_chat");
    const readable = b.modelfile !== null && b.modelfile !== undefined;
    const actions = [
      canChat &&
        h(
          "button",
          {
            type: "button",
            class: "bot-chat",
            "data-testid": `bot-chat-${b.id}`,
            onclick: (e) => this.chat(b, e.currentTarget),
          },
          icon("chat", 16),
          h("span", { text: t("chat_with_bot") }),
        ),
      b.can_edit &&
        iconButton("edit", t("edit_bot"), {
          class: "icon-btn",
          "data-testid": `bot-edit-${b.id}`,
          onclick: () => this.openEditor(b),
        }),
      readable &&
        this.app.can("Store_create_private_bot") &&
        iconButton("copy", t("clone_bot"), {
          class: "icon-btn",
          "data-testid": `bot-clone-${b.id}`,
          onclick: () => this.clone(b),
        }),
      readable &&
        h(
          "a",
          {
            class: "icon-btn",
            href: `/app/bots/${b.id}/export`,
            download: `${b.name.replace(/[\\/:*?"<>|]+/g, "_") || "bot"}.bot`,
            title: t("export_bot"),
            "aria-label": t("export_bot"),
            "data-testid": `bot-export-${b.id}`,
          },
          pathIcon("download", 18),
        ),
      b.can_delete &&
        iconButton("trash", t("delete_bot"), {
          class: "icon-btn danger-icon",
          "data-testid": `bot-delete-${b.id}`,
          onclick: () => this.remove(b),
        }),
    ];
    return h(
      "article",
      { class: "model-card bot-card store-card", "data-testid": `store-bot-${b.id}`, "data-code": b.code },
      h(
        "span",
        { class: "card-top" },
        avatar(b.name, b.avatar, b.code, "lg"),
      ),
      h("span", { class: "card-badges" }, visibilityBadge(b.visibility)),
      h("span", { class: "card-name", text: b.name }),
      h("span", { class: "card-by", text: b.owner ? t("by_owner", { name: b.owner }) : "" }),
      h("span", { class: "card-desc", text: b.description || t("no_description") }),
      h(
        "span",
        { class: "card-foot" },
        h("span", { class: "card-uses", title: t("uses_title"), text: t("uses_count", { n: b.uses || 0 }) }),
        h("span", { class: "card-actions" }, actions),
      ),
    );
  }

  async chat(b, button) {
    if (button) button.disabled = true;
    try {
      loadBots(this.app, true);
      await startRoom(this.app, [b.code]);
    } catch (err) {
      toast(err.message);
      if (button) button.disabled = false;
    }
  }

  async clone(b) {
    try {
      const copy = await api.post(`/app/bots/${b.id}/clone`, {});
      toast(t("bot_cloned", { name: copy.name }), "ok", 4000);
      await this.changed();
      this.openEditor(copy);
    } catch (err) {
      toast(err.message);
    }
  }

  async remove(b) {
    if (!(await confirmDialog(t("delete_bot_confirm", { name: b.name }), t("delete")))) return;
    try {
      await api.post(`/app/bots/${b.id}/delete`, {});
      toast(t("bot_deleted", { name: b.name }), "ok", 4000);
      await this.changed();
    } catch (err) {
      toast(err.message);
    }
  }

  async changed() {
    loadBots(this.app, true);
    await this.load();
  }

  async importFile() {
    const file = this.fileInput.files?.[0];
    this.fileInput.value = "";
    if (!file) return;
    try {
      const r = await fetch("/app/bots/import", {
        method: "POST",
        credentials: "same-origin",
        headers: {
          accept: "application/json",
          "content-type": "application/octet-stream",
          "x-csrftoken": csrfToken(),
        },
        body: file,
      });
      const data = await r.json().catch(() => null);
      if (!r.ok) throw new Error(data?.error?.message || t("error_status", { status: r.status }));
      toast(t("bot_imported", { name: data.name }), "ok", 4000);
      await this.changed();
    } catch (err) {
      toast(err.message);
    }
  }

  // --- the editor -------------------------------------------------------------------------------
  openEditor(bot) {
    const editing = Boolean(bot);
    let avatarUrl = bot?.avatar || "";
    const models = [...this.app.models.values()];
    const baseSelect = h(
      "select",
      { id: "bot-base", "data-testid": "bot-base", required: true },
      models.map((m) => h("option", { value: m.code, text: `${m.name} (${m.code})`, selected: m.code === bot?.base })),
    );
    if (bot && !this.app.models.has(bot.base)) {
      baseSelect.prepend(h("option", { value: bot.base, text: bot.base, selected: true }));
    }
    const levels = this.creatable();
    if (bot && !levels.includes(bot.visibility)) levels.push(bot.visibility);
    const visSelect = h(
      "select",
      { id: "bot-visibility", "data-testid": "bot-visibility" },
      VISIBILITIES.filter((v) => levels.includes(v)).map((v) =>
        h("option", { value: v, text: t(`vis_${v}_long`), selected: v === (bot?.visibility || "private") }),
      ),
    );
    const nameInput = h("input", {
      id: "bot-name",
      type: "text",
      maxLength: 200,
      required: true,
      value: bot?.name || "",
      "data-testid": "bot-name",
      autocomplete: "off",
    });
    const descInput = h("textarea", {
      id: "bot-description",
      rows: 2,
      value: bot?.description || "",
      "data-testid": "bot-description",
    });
    const mfError = h("p", { class: "field-error", role: "alert", "data-testid": "bot-error", hidden: true });
    const formError = h("p", { class: "field-error", role: "alert", "data-testid": "bot-form-error", hidden: true });
    const showMfError = (text) => {
      mfError.textContent = text || "";
      mfError.hidden = !text;
      mfInput.setAttribute("aria-invalid", String(Boolean(text)));
    };
    let timer = 0;
    const quickCheck = () => {
      const line = unclosedTriple(mfInput.value);
      showMfError(line ? t("mf_unclosed", { line }) : "");
      return !line;
    };
    const mfInput = h("textarea", {
      id: "bot-modelfile",
      class: "mono",
      rows: 7,
      value: editing ? bot.modelfile || "" : "",
      placeholder: 'SYSTEM """You are a helpful assistant."""\nAFTER-PROMPT " (answer briefly)"',
      "data-testid": "bot-modelfile",
      "aria-describedby": "bot-mf-hint",
      oninput: () => {
        clearTimeout(timer);
        timer = setTimeout(quickCheck, 350);
      },
    });
    mfInput.spellcheck = false;
    const avatarBox = h("span", { class: "avatar-preview" });
    const removeAvatar = h("button", {
      type: "button",
      class: "link",
      text: t("remove_avatar"),
      onclick: () => {
        avatarUrl = "";
        drawAvatar();
      },
    });
    const drawAvatar = () => {
      avatarBox.replaceChildren(avatar(nameInput.value || "?", avatarUrl, bot?.code || "new", "lg"));
      removeAvatar.hidden = !avatarUrl;
    };
    nameInput.addEventListener("input", () => {
      if (!avatarUrl) drawAvatar();
    });
    const avatarInput = h("input", {
      type: "file",
      accept: "image/png,image/jpeg,image/gif,image/webp",
      hidden: true,
      "data-testid": "bot-avatar",
      onchange: async () => {
        const file = avatarInput.files?.[0];
        avatarInput.value = "";
        if (!file) return;
        if (!/^image\/(png|jpe?g|gif|webp)$/.test(file.type)) {
          toast(t("avatar_type"));
          return;
        }
        if (file.size > MAX_AVATAR_BYTES) {
          toast(t("avatar_too_big", { kb: 500 }));
          return;
        }
        avatarUrl = await readAsDataURL(file);
        drawAvatar();
      },
    });
    const save = h("button", { type: "submit", "data-testid": "bot-save", text: editing ? t("save") : t("create_bot") });
    const cancel = h("button", { type: "button", class: "secondary", text: t("cancel"), onclick: () => dlg.close() });
    const field = (label, forId, control, extra = null) =>
      h("div", { class: "field" }, h("label", { for: forId, text: label }), control, extra);
    const form = h(
      "form",
      {
        class: "bot-form",
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          // A quick check still waiting to run would wipe the server's error shown below.
          clearTimeout(timer);
          formError.hidden = true;
          if (!nameInput.value.trim()) {
            formError.textContent = t("bot_name_needed");
            formError.hidden = false;
            nameInput.focus();
            return;
          }
          if (!quickCheck()) {
            mfInput.focus();
            return;
          }
          const body = {
            name: nameInput.value.trim(),
            description: descInput.value,
            base: baseSelect.value,
            visibility: visSelect.value,
            modelfile: mfInput.value,
            avatar: avatarUrl,
          };
          save.disabled = true;
          try {
            const saved = await api.post(editing ? `/app/bots/${bot.id}` : "/app/bots", body);
            dlg.close();
            toast(t(editing ? "bot_saved" : "bot_created", { name: saved.name }), "ok", 4000);
            await this.changed();
          } catch (err) {
            const msg = err.message || String(err);
            const param = err instanceof ApiError ? err.body?.error?.param : null;
            if (/modelfile|line \d+/i.test(msg) || param === "modelfile") {
              showMfError(msg);
              mfInput.focus();
            } else {
              formError.textContent = msg;
              formError.hidden = false;
            }
          } finally {
            save.disabled = false;
          }
        },
      },
      h(
        "div",
        { class: "dialog-head" },
        h("h2", { text: editing ? t("edit_bot") : t("new_bot") }),
        iconButton("close", t("close"), { class: "icon-btn", onclick: () => dlg.close() }),
      ),
      h(
        "div",
        { class: "bot-avatar-row" },
        avatarBox,
        h(
          "div",
          { class: "bot-avatar-tools" },
          h("button", { type: "button", class: "secondary small-btn", text: t("upload_avatar"), onclick: () => avatarInput.click() }),
          removeAvatar,
          h("span", { class: "muted small", text: t("avatar_hint", { kb: 500 }) }),
          avatarInput,
        ),
      ),
      field(t("bot_name"), "bot-name", nameInput),
      field(t("bot_description"), "bot-description", descInput),
      h(
        "div",
        { class: "field-row" },
        field(t("bot_base"), "bot-base", baseSelect),
        field(t("bot_visibility"), "bot-visibility", visSelect),
      ),
      field(
        t("bot_modelfile"),
        "bot-modelfile",
        mfInput,
        h("div", {}, mfError, h("p", { id: "bot-mf-hint", class: "muted small hint", text: t("modelfile_hint") })),
      ),
      knowledgeField(editing ? bot.id : null),
      formError,
      h("div", { class: "dialog-actions" }, cancel, save),
    );
    const dlg = h("dialog", { class: "dialog bot-editor", "data-testid": "bot-editor", "aria-label": editing ? t("edit_bot") : t("new_bot") }, form);
    dlg.addEventListener("close", () => {
      clearTimeout(timer);
      dlg.remove();
    });
    drawAvatar();
    document.body.append(dlg);
    dlg.showModal();
    nameInput.focus();
    if (!models.length && !bot) {
      formError.textContent = t("no_models");
      formError.hidden = false;
    }
  }
}
