// Kuwa's chat page: the app shell (sidebar, top bar, theme, language) and a tiny router
// between the model picker (/) and an open room (/rooms/{id}). Plain ES modules, no build.
import { api } from "./js/api.js";
import { h, iconButton, toast } from "./js/dom.js";
import { loadStrings, t } from "./js/i18n.js";
import { ArenaView, isArenaPath } from "./js/arena.js";
import { Picker } from "./js/picker.js";
import { RoomView } from "./js/room.js";
import { TrashView, ensureTrashLink, isTrashPath } from "./js/trash.js";
import { Sidebar } from "./js/sidebar.js";

const SIDEBAR_KEY = "kuwa.sidebar";
const PHONE = window.matchMedia("(max-width: 600px)");

function readConfig() {
  const node = document.getElementById("kuwa-config");
  try {
    return JSON.parse(node?.textContent || "{}");
  } catch {
    return {};
  }
}

// --- the header ------------------------------------------------------------------------------
// The page's header (templates/base.html, js/page.js) holds the sections, the theme and the
// language; the chat app routes its own sections (chat, arena, store) without a reload and
// marks the one shown.
const APP_PATHS = /^\/(arena|store)?\/?$/;

function markNav(path) {
  const section = /^\/arena\/?$/.test(path) ? "/arena" : /^\/store\/?$/.test(path) ? "/store" : "/";
  for (const link of document.querySelectorAll("header.top nav a[href]")) {
    const on = link.getAttribute("href") === section;
    link.classList.toggle("active", on);
    if (on) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// --- the app ----------------------------------------------------------------------------------
class App {
  constructor(config) {
    this.config = config;
    this.perms = new Set(config.perms || []);
    this.models = new Map();
    this.modelsLoaded = false;
    this.modelsPromise = null;
    this.roomId = null;
    this.view = null;
  }

  can(perm) {
    return this.perms.has(perm);
  }

  loadModels(force = false) {
    if (!this.modelsPromise || force) {
      this.modelsPromise = api
        .get("/app/models")
        .then((data) => {
          this.models = new Map((data.models || []).map((m) => [m.code, m]));
          // The same answer lists the bots (store.js's loadBots reuses it).
          this.bots = new Map((data.bots || []).map((b) => [b.code, b]));
          this.botsLoaded = true;
          this.modelsLoaded = true;
          this.sidebar?.render();
        })
        .catch((err) => {
          this.modelsLoaded = true;
          toast(err.message);
        });
      this.botsPromise = this.modelsPromise;
    }
    return this.modelsPromise;
  }

  setTitle(text) {
    this.bar.title.textContent = text;
    document.title = text ? `${text} · Kuwa` : "Kuwa";
  }

  roomChanged(room) {
    this.sidebar.patch(room);
    if (this.view instanceof RoomView && this.view.id === room.id) this.view.onRoom(room);
  }

  toggleSidebar(open) {
    if (PHONE.matches) {
      const show = open ?? !this.shell.classList.contains("side-open");
      this.shell.classList.toggle("side-open", show);
      if (show) this.sidebar.search.focus({ preventScroll: true });
    } else {
      const hidden = open === undefined ? !this.shell.classList.contains("side-hidden") : !open;
      this.shell.classList.toggle("side-hidden", hidden);
      localStorage.setItem(SIDEBAR_KEY, hidden ? "hidden" : "shown");
    }
    this.menuButton.setAttribute("aria-expanded", String(this.sidebarShown()));
  }

  sidebarShown() {
    return PHONE.matches
      ? this.shell.classList.contains("side-open")
      : !this.shell.classList.contains("side-hidden");
  }

  navigate(path, { replace = false, room = null } = {}) {
    if (!replace && !room && path === location.pathname && this.view) {
      this.shell.classList.remove("side-open"); // already there
      return;
    }
    if (replace) history.replaceState({}, "", path);
    else if (path !== location.pathname) history.pushState({}, "", path);
    this.route(path, room);
  }

  route(path, preset = null) {
    const match = path.match(/^\/rooms\/(\d+)\/?$/);
    this.view?.unmount();
    this.shell.classList.remove("side-open");
    // Blind mode (an admin's choice for the user's group): a new chat is an arena battle.
    const arena = !match && (isArenaPath(path) || Boolean(this.config.blind));
    if (match) {
      this.roomId = Number(match[1]);
      this.view = new RoomView(this, this.roomId, preset);
    } else if (isTrashPath(path)) {
      this.roomId = null;
      this.view = new TrashView(this);
    } else {
      this.roomId = null;
      this.view = arena ? new ArenaView(this) : new Picker(this);
    }
    ensureTrashLink(this);
    markNav(path);
    this.shell.dataset.view = match ? "room" : this.view instanceof TrashView ? "trash" : arena ? "arena" : "picker";
    this.view.mount(this.viewEl);
    this.sidebar.render();
  }

  build(root) {
    this.sidebar = new Sidebar(this);
    this.menuButton = iconButton("menu", t("toggle_sidebar"), {
      class: "icon-btn menu-btn",
      "data-testid": "menu",
      "aria-controls": "sidebar",
      onclick: () => this.toggleSidebar(),
    });
    this.bar = {
      title: h("h1", { class: "bar-title", id: "room-title" }),
      presence: h("div", { class: "bar-presence" }),
      actions: h("div", { class: "bar-actions" }),
    };
    this.viewEl = h("div", { class: "view" });
    const backdrop = h("div", { class: "backdrop", onclick: () => this.toggleSidebar(false) });
    this.shell = h(
      "div",
      { class: "shell" },
      this.sidebar.el,
      backdrop,
      h(
        "section",
        { class: "stage" },
        h(
          "header",
          { class: "bar" },
          this.menuButton,
          this.bar.title,
          this.bar.presence,
          this.bar.actions,
        ),
        this.viewEl,
      ),
    );
    if (localStorage.getItem(SIDEBAR_KEY) === "hidden") this.shell.classList.add("side-hidden");
    root.replaceChildren(this.shell);
    this.menuButton.setAttribute("aria-expanded", String(this.sidebarShown()));
    // The header's chat, arena and store links route inside the app.
    for (const link of document.querySelectorAll("header.top nav a[href]")) {
      if (!APP_PATHS.test(link.getAttribute("href"))) continue;
      link.addEventListener("click", (e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button) return;
        e.preventDefault();
        this.navigate(link.getAttribute("href"));
      });
    }
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.shell.classList.contains("side-open")) this.toggleSidebar(false);
    });
    window.addEventListener("popstate", () => this.route(location.pathname));
    PHONE.addEventListener("change", () => {
      this.shell.classList.remove("side-open");
      this.menuButton.setAttribute("aria-expanded", String(this.sidebarShown()));
    });
  }
}

async function main() {
  const config = readConfig();
  await loadStrings(config.lang || "en");
  const app = new App(config);
  window.kuwaApp = app; // for debugging in the console
  app.build(document.getElementById("kuwa-app"));
  app.loadModels();
  app.sidebar.load();
  app.route(location.pathname);
}

main().catch((err) => {
  console.error(err);
  toast(String(err?.message || err));
});
