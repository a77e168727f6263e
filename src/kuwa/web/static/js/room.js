// An open room: one column per model, prompts above each turn's answers, answers streaming in
// over the room's event stream, the composer, react buttons, versions and branches.
import { api } from "./api.js";
import { ArenaBar } from "./arena.js";
import { avatar, confirmDialog, h, icon, iconButton, relativeTime, toast } from "./dom.js";
import { lang, t } from "./i18n.js";
import { copyText, render as renderMarkdown } from "./markdown.js";
import { openShare } from "./share.js";
import { shareLinkSection } from "./sharelink.js";
import { ensureStoreLink, loadBots, modelInfo } from "./store.js";
import { applySelected, branchesOf, composeQuoted, thread, versionsOf } from "./thread.js";
import { exportMenu, openImport, pathIcon } from "./transfer.js";

const POSITIVE = ["correct", "easy_to_understand", "complete"];
const NEGATIVE = ["unsafe", "incorrect", "irrelevant", "language"];
const NEAR_BOTTOM = 96;
const EXPORT = "Room_read_export_chat";
const IMPORT = "Room_update_import_chat";

export class RoomView {
  constructor(app, id, preset) {
    this.app = app;
    this.id = id;
    this.room = preset ? { ...preset } : null;
    this.msgs = new Map();
    for (const m of preset?.messages || []) this.msgs.set(m.id, { ...m });
    this.seq = new Map(); // answer id → last delta seq applied
    this.tseq = new Map(); // answer id → last translation seq applied
    this.pending = new Map(); // deltas for answers not known yet
    this.answerEls = new Map();
    this.promptEls = new Map();
    this.columnEls = new Map();
    this.direct = new Set();
    this.quotes = [];
    this.showOriginal = new Set();
    this.editing = null;
    this.feedbackOpen = null;
    this.activeTab = null;
    this.presence = [];
    this.dirty = new Set();
    this.structureDirty = true;
    this.raf = 0;
    this.renderCost = new Map();
    this.closed = false;
    this.sending = false;
    this.forceBottom = true;
    ensureStoreLink(app);
  }

  // --- lifecycle -----------------------------------------------------------------------------
  mount(container) {
    this.tabs = h("div", { class: "col-tabs", role: "tablist", "aria-label": t("models") });
    this.board = h("div", { class: "board" });
    this.emptyHint = h("div", { class: "empty-room", hidden: true });
    this.scroller = h(
      "div",
      { class: "board-scroll", "data-testid": "board" },
      this.board,
      this.emptyHint,
    );
    this.conn = h("div", { class: "conn", role: "status", hidden: true });
    this.footer = h("div", { class: "composer-wrap" });
    this.arenaBar = new ArenaBar(this);
    this.el = h(
      "div",
      { class: "room", "aria-busy": this.room ? null : "true" },
      this.tabs,
      this.conn,
      this.scroller,
      this.arenaBar.el,
      this.footer,
    );
    container.replaceChildren(this.el);
    this.bindHighlight();
    this.scroller.addEventListener("scroll", () => {
      this.pinned = this.isNearBottom();
    });
    this.pinned = true;
    if (this.room) this.app.setTitle(this.room.title || t("untitled"));
    else this.app.setTitle("");
    this.buildComposer();
    this.renderMeta();
    this.schedule();
    Promise.all([this.app.loadModels(), loadBots(this.app)]).then(() => {
      this.structureDirty = true;
      this.renderMeta();
      this.schedule();
    });
    this.connect();
  }

  unmount() {
    this.closed = true;
    if (this.es) this.es.close();
    clearTimeout(this.retryTimer);
    if (this.raf) cancelAnimationFrame(this.raf);
    this.app.bar.presence.replaceChildren();
    this.app.bar.actions.replaceChildren();
  }

  // --- the event stream ----------------------------------------------------------------------
  connect() {
    if (this.closed) return;
    const es = new EventSource(`/app/rooms/${this.id}/events`);
    this.es = es;
    const on = (name, fn) =>
      es.addEventListener(name, (e) => {
        if (this.closed || this.es !== es) return;
        let data;
        try {
          data = JSON.parse(e.data);
        } catch {
          return;
        }
        fn(data);
      });
    on("hello", (d) => this.onHello(d.room));
    on("message", (m) => this.merge(m));
    on("delta", (d) => this.onDelta(d));
    on("translation", (d) => this.onTranslation(d));
    on("presence", (d) => this.onPresence(d.users || []));
    on("room", (r) => this.onRoom(r));
    on("gone", (d) => this.onGone(d.reason));
    es.addEventListener("open", () => this.setConn(null));
    es.addEventListener("error", () => {
      if (this.closed || this.es !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // Refused (not a member any more, deleted, signed out…): find out why, maybe retry.
        this.setConn(t("reconnecting"));
        this.checkAccess();
      } else {
        this.setConn(t("reconnecting"));
      }
    });
  }

  async checkAccess() {
    try {
      await api.get(`/app/rooms/${this.id}`);
      this.retryTimer = setTimeout(() => this.connect(), 2000);
    } catch (err) {
      if (err.status === 404 || err.status === 403) this.onGone(err.message);
      else if (err.status === 401) location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
      else this.retryTimer = setTimeout(() => this.connect(), 4000);
    }
  }

  setConn(text) {
    this.conn.hidden = !text;
    this.conn.textContent = text || "";
  }

  onHello(room) {
    const { messages, ...meta } = room;
    this.room = meta;
    this.msgs = new Map((messages || []).map((m) => [m.id, { ...m }]));
    this.seq.clear();
    this.tseq.clear();
    this.replaying = new Set([...this.msgs.values()].filter((m) => m.status === "running").map((m) => m.id));
    this.replayingTr = new Set(
      [...this.msgs.values()].filter((m) => m.translation?.status === "running").map((m) => m.id),
    );
    this.el.removeAttribute("aria-busy");
    // Forget quotes of messages that are gone.
    this.quotes = this.quotes.filter((q) => this.msgs.has(q.id));
    this.app.setTitle(meta.title || t("untitled"));
    this.structureDirty = true;
    this.renderMeta();
    this.renderComposerState();
    this.schedule();
  }

  onRoom(room) {
    const { messages, ...meta } = room;
    // My role may have changed with the members; an event without it: ask (GET has it).
    if (!("role" in meta) && !this.closed) this.refreshMeta(true);
    if (this.room?.arena && !this.room.revealed && meta.revealed) {
      // The vote revealed who was who: reopen, so every name comes fresh from the server.
      this.app.navigate(`/rooms/${this.id}`, { replace: true });
      return;
    }
    const roleChanged = this.room && meta.role && meta.role !== this.room.role;
    this.room = { ...this.room, ...meta };
    this.app.setTitle(this.room.title || t("untitled"));
    this.app.sidebar.patch(this.room);
    this.structureDirty = true;
    this.renderMeta();
    if (roleChanged) this.buildComposer();
    this.renderComposerState();
    this.schedule();
    this.shareDialog?.update(this.room);
  }

  onGone(reason) {
    if (this.closed) return;
    if (this.es) this.es.close();
    toast(reason || t("room_gone"), "info");
    this.app.sidebar.remove(this.id);
    this.app.navigate("/", { replace: true });
  }

  onPresence(users) {
    this.presence = users;
    this.renderPresence();
  }

  /**
   * A message from the stream, or (`snapshot`) from a POST's answer. The stream is the source
   * of truth and delivers every change in order; a POST's copy may be older than what the
   * stream already said (an answer that finished before the POST returned), so it only adds
   * messages not seen yet, finished states and my feedback.
   */
  merge(m, snapshot = false) {
    if (!m || typeof m.id !== "number") return;
    if (snapshot && this.msgs.has(m.id) && !m.deleted) {
      const old = this.msgs.get(m.id);
      const next = { ...old, feedback: m.feedback === undefined ? old.feedback : m.feedback };
      if (old.status === "running" && m.status && m.status !== "running") {
        Object.assign(next, { status: m.status, content: m.content, error: m.error });
      }
      if (old.translation?.status === "running" && m.translation && m.translation.status !== "running") {
        next.translation = m.translation;
      }
      this.msgs.set(m.id, next);
      this.structureDirty = true;
      this.dirty.add(m.id);
      this.schedule();
      return;
    }
    if (m.deleted) {
      this.msgs.delete(m.id);
      this.answerEls.delete(m.id);
      this.promptEls.delete(m.id);
      this.quotes = this.quotes.filter((q) => q.id !== m.id);
      this.renderChips();
      this.structureDirty = true;
      this.schedule();
      return;
    }
    const old = this.msgs.get(m.id);
    const next = { ...m };
    if (old && m.status === "running" && old.status === "running") {
      // The stream's text is newer than a snapshot taken while it ran.
      if ((old.content || "").length > (m.content || "").length) next.content = old.content;
    }
    if (old?.translation && next.translation?.status === "running" && old.translation.status === "running") {
      const oc = old.translation.content || "";
      if (oc.length > (next.translation.content || "").length) next.translation = { ...next.translation, content: oc };
    }
    if (next.translation?.status === "running" && !(old?.translation?.status === "running")) {
      this.tseq.delete(m.id); // a new translation starts from seq 0
      this.showOriginal.delete(m.id);
    }
    this.msgs.set(m.id, next);
    applySelected(this.msgs, next);
    if (this.pending.has(m.id)) {
      const queued = this.pending.get(m.id);
      this.pending.delete(m.id);
      for (const d of queued) this.onDelta(d);
    }
    this.structureDirty = true;
    this.dirty.add(m.id);
    this.schedule();
  }

  onDelta({ id, text, seq }) {
    const m = this.msgs.get(id);
    if (!m) {
      if (!this.pending.has(id)) this.pending.set(id, []);
      this.pending.get(id).push({ id, text, seq });
      return;
    }
    if (m.status !== "running") return; // finished: its content is final
    const last = this.seq.has(id) ? this.seq.get(id) : -1;
    if (typeof seq === "number" && seq <= last) return;
    if (this.replaying?.has(id)) {
      // The first delta after hello replays the job from its start.
      this.replaying.delete(id);
      if (seq === 0 || seq === 1) m.content = "";
    }
    m.content = (m.content || "") + (text || "");
    if (typeof seq === "number") this.seq.set(id, seq);
    this.dirty.add(id);
    this.schedule();
  }

  onTranslation({ id, text, seq, done }) {
    const m = this.msgs.get(id);
    if (!m) return;
    if (!m.translation) m.translation = { lang: lang(), content: "", status: "running" };
    if (m.translation.status !== "running") return;
    const last = this.tseq.has(id) ? this.tseq.get(id) : -1;
    if (typeof seq === "number" && seq <= last) return;
    if (this.replayingTr?.has(id)) {
      this.replayingTr.delete(id);
      if (seq === 0 || seq === 1) m.translation.content = "";
    }
    m.translation.content = (m.translation.content || "") + (text || "");
    if (typeof seq === "number") this.tseq.set(id, seq);
    if (done) m.translation.status = "done";
    this.dirty.add(id);
    this.schedule();
  }

  // --- permissions ---------------------------------------------------------------------------
  get role() {
    return this.room?.role || "viewer";
  }
  get isOwner() {
    return this.role === "owner";
  }
  get isParticipant() {
    return this.role === "owner" || this.role === "participant";
  }
  get me() {
    return this.room?.me || this.app.config.me || {};
  }
  canSend() {
    return this.isParticipant && this.app.can("Room_update_send_message");
  }
  canImport() {
    return this.canSend() && this.app.can(IMPORT);
  }
  model(code) {
    return modelInfo(this.app, code);
  }
  columns(turns) {
    const codes = [...(this.room?.models || [])];
    for (const turn of turns) for (const code of turn.answers.keys()) if (!codes.includes(code)) codes.push(code);
    return codes;
  }
  anyRunning() {
    for (const m of this.msgs.values()) if (m.role === "assistant" && m.status === "running") return true;
    return false;
  }

  // --- rendering -----------------------------------------------------------------------------
  schedule() {
    if (!this.raf && !this.closed) this.raf = requestAnimationFrame(() => this.flush());
  }

  isNearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM;
  }

  flush() {
    this.raf = 0;
    if (this.closed) return;
    const stick = this.forceBottom || this.pinned;
    const focusKey = document.activeElement?.dataset?.focusKey;
    if (this.structureDirty) {
      this.structureDirty = false;
      this.renderStructure();
    }
    const now = performance.now();
    for (const id of [...this.dirty]) {
      // A very long answer that renders slowly is re-rendered less often while it streams.
      const wait = this.renderCost.get(id);
      const m = this.msgs.get(id);
      if (wait && wait.next > now && m?.status === "running") continue;
      this.dirty.delete(id);
      this.renderContent(id);
    }
    if (this.dirty.size) this.schedule();
    if (focusKey && document.activeElement?.dataset?.focusKey !== focusKey) {
      this.el.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus({ preventScroll: true });
    }
    this.renderComposerState();
    if (stick) {
      this.scroller.scrollTop = this.scroller.scrollHeight;
      this.pinned = true;
    }
    this.forceBottom = false;
  }

  renderMeta() {
    this.renderPresence();
    const actions = [];
    const blinded = this.room?.arena && !this.room.revealed; // no export before the vote
    if (this.room && this.app.can(EXPORT) && !blinded) {
      this.exportEl ??= exportMenu(this.id);
      actions.push(this.exportEl);
    }
    if (this.room && this.canImport()) {
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
    if (this.room && this.isOwner) {
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
    } else if (this.room && this.role !== "owner") {
      actions.push(h("span", { class: "role-badge", text: t(`role_${this.role}`) }));
    }
    this.app.bar.actions.replaceChildren(...actions);
  }

  openShare() {
    const members = openShare(this.app, this.room, (room) => this.onRoom(room));
    const dialogs = document.querySelectorAll('dialog[data-testid="share-dialog"]');
    const dlg = dialogs[dialogs.length - 1];
    const link = shareLinkSection(this.room, (room) => this.onRoom(room));
    dlg?.append(link.el);
    this.shareDialog = {
      update(room) {
        members.update(room);
        link.update(room);
      },
    };
  }

  openImport() {
    openImport(this.id, {
      onAttempt: () => this.reloadRoom(),
      onImported: ({ pending }) => {
        toast(t("imported", { n: pending }), "ok", 5000);
        this.forceBottom = true;
        this.app.sidebar.bump(this.id);
      },
    });
  }

  /** Re-fetch the room (after an import) and merge it into what the stream has told us. */
  async reloadRoom() {
    let room;
    try {
      room = await api.get(`/app/rooms/${this.id}`);
    } catch (err) {
      if (err.status === 404 || err.status === 403) this.onGone(err.message);
      else toast(err.message);
      return;
    }
    if (this.closed) return;
    const { messages, ...meta } = room;
    for (const m of messages || []) {
      const old = this.msgs.get(m.id);
      // The stream may already know this answer finished; a snapshot never sets it back.
      if (old && old.status && old.status !== "running" && m.status === "running") continue;
      this.merge(m);
    }
    this.forceBottom = true;
    this.onRoom(meta);
  }

  renderPresence() {
    const users = this.presence || [];
    const box = h("div", { class: "presence", "data-testid": "presence", "aria-label": t("here_now") });
    if (users.length > 1 || (users.length === 1 && users[0].id !== this.me.id)) {
      const meId = this.me.id;
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
    this.app.bar.presence.replaceChildren(box);
  }

  renderStructure() {
    if (!this.room) {
      this.board.replaceChildren(
        ...[0, 1].map(() => h("div", { class: "col skeleton-col", "aria-hidden": "true" })),
      );
      return;
    }
    const turns = thread(this.msgs.values());
    const codes = this.columns(turns);
    if (!codes.includes(this.activeTab)) this.activeTab = codes[0] || null;
    const T = turns.length;
    this.board.style.setProperty("--cols", String(codes.length));
    this.board.classList.toggle("single", codes.length === 1);
    this.el.classList.toggle("multi", codes.length > 1);

    // Column heads and cells; while anything runs, each head counts its finished answers.
    const busy = this.anyRunning();
    const columns = codes.map((code, i) => {
      const model = this.model(code);
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
          const rec = this.answerRecord(entry.shown);
          this.updateAnswer(rec, entry.shown, entry.versions, model);
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
      const rec = this.promptRecord(turn.prompt);
      this.updatePrompt(rec, turn.prompt, turn.branches);
      rec.wrap.style.gridRow = String(2 + 2 * i);
      return rec.wrap;
    });
    this.board.replaceChildren(...columns, ...prompts);
    this.renderTabs(codes);

    this.emptyHint.hidden = T > 0;
    if (!T) {
      this.emptyHint.replaceChildren(
        h("div", { class: "empty-avatars" }, codes.map((c) => avatar(this.model(c).name, this.model(c).image, c, "lg"))),
        h("p", { class: "empty-title", text: codes.map((c) => this.model(c).name).join(" · ") }),
        h("p", {
          class: "muted",
          text: this.canSend() ? t("empty_room_hint") : t("empty_room_viewer"),
        }),
      );
    }
  }

  renderTabs(codes) {
    if (codes.length < 2) {
      this.tabs.replaceChildren();
      this.tabs.hidden = true;
      return;
    }
    this.tabs.hidden = false;
    this.tabs.replaceChildren(
      ...codes.map((code) => {
        const model = this.model(code);
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
          this.direct.has(code) ? h("span", { class: "tab-direct", "aria-label": t("direct_on") }, icon("target", 12)) : null,
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
    const on = this.direct.has(model.code);
    const canDirect = this.canSend() && (this.room?.models || []).length > 1;
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
            onclick: () => this.toggleDirect(model.code),
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
    );
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

  toggleDirect(code) {
    if (this.direct.has(code)) this.direct.delete(code);
    else this.direct.add(code);
    this.structureDirty = true;
    this.schedule();
    this.renderChips();
    this.textarea?.focus();
  }

  // --- answers -------------------------------------------------------------------------------
  answerRecord(m) {
    let rec = this.answerEls.get(m.id);
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
        "aria-label": t("answer_of", { name: this.model(m.model).name }),
      },
      transBar,
      body,
      trans,
      error,
      foot,
      panelSlot,
    );
    rec = { el, body, trans, transBar, error, foot, panelSlot, sig: "", text: null, ttext: null };
    this.answerEls.set(m.id, rec);
    this.dirty.add(m.id);
    return rec;
  }

  updateAnswer(rec, m, versions, model) {
    rec.el.dataset.status = m.status;
    rec.el.dataset.prompt = String(m.parent);
    const quoted = this.quotes.some((q) => q.id === m.id);
    const index = versions.findIndex((v) => v.id === m.id);
    const sig = JSON.stringify([
      m.status,
      index,
      versions.length,
      m.feedback?.rating || 0,
      m.translation?.status || "",
      this.showOriginal.has(m.id),
      quoted,
      this.role,
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
            this.structureDirty = true;
            this.dirty.add(m.id);
            this.schedule();
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
    rec.foot.replaceChildren(...this.answerFoot(m, versions, index, model, quoted));
    // Feedback detail panel.
    if (this.feedbackOpen?.id === m.id) {
      if (!rec.panel) rec.panel = this.feedbackPanel(m, this.feedbackOpen.rating);
      rec.panelSlot.replaceChildren(rec.panel);
    } else {
      rec.panel = null;
      rec.panelSlot.replaceChildren();
    }
  }

  answerFoot(m, versions, index, model, quoted) {
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
            disabled: !prev || !this.isParticipant,
            onclick: () => prev && this.select(prev),
          }),
          h("span", { class: "pager-text", text: `${index + 1}/${versions.length}` }),
          iconButton("right", t("next_version"), {
            class: "icon-btn sm",
            "data-testid": "version-next",
            "data-focus-key": `${m.id}:vnext`,
            disabled: !next || !this.isParticipant,
            onclick: () => next && this.select(next),
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
    if (buttons.includes("quote") && m.content && this.canSend()) {
      actions.append(
        iconButton("quote", quoted ? t("unquote") : t("quote"), {
          "data-testid": "react-quote",
          "data-focus-key": key("quote"),
          "aria-pressed": String(quoted),
          onclick: () => this.toggleQuote(m),
        }),
      );
    }
    if (
      buttons.includes("translate") &&
      m.content &&
      this.isParticipant &&
      this.app.can("Room_update_react_message")
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
    if (buttons.includes("feedback") && this.app.can("Room_update_feedback") && m.status === "done") {
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
    if (buttons.includes("regenerate") && this.canSend()) {
      actions.append(
        iconButton("regenerate", t("regenerate"), {
          "data-testid": "react-regenerate",
          "data-focus-key": key("regen"),
          onclick: () => this.regenerate(m),
        }),
      );
    }
    if (this.canDeleteAnswer(m)) {
      actions.append(
        iconButton("trash", t("delete_answer"), {
          "data-testid": "react-delete",
          "data-focus-key": key("delete"),
          class: "icon-btn danger-hover",
          onclick: () => this.deleteMessage(m, t("delete_answer_confirm")),
        }),
      );
    }
    out.push(actions);
    return out;
  }

  canDeleteAnswer(m) {
    if (this.isOwner) return true;
    if (!this.isParticipant) return false;
    const prompt = this.msgs.get(m.parent);
    return Boolean(prompt && prompt.author?.id === this.me.id);
  }

  renderContent(id) {
    const m = this.msgs.get(id);
    const rec = this.answerEls.get(id);
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
      this.structureDirty = true;
      this.schedule();
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
            this.merge(updated, true);
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

  // --- prompts -------------------------------------------------------------------------------
  promptRecord(p) {
    let rec = this.promptEls.get(p.id);
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
    this.promptEls.set(p.id, rec);
    return rec;
  }

  updatePrompt(rec, p, branches) {
    if (rec.content !== p.content) {
      rec.text.textContent = p.content;
      rec.content = p.content;
      rec.el.classList.toggle("long", p.content.split("\n").length > 14 || p.content.length > 1400);
    }
    const editing = this.editing === p.id;
    const index = branches.findIndex((b) => b.id === p.id);
    const shared = (this.room?.members || []).length > 0 || this.role !== "owner" || p.author?.id !== this.me.id;
    const sig = JSON.stringify([index, branches.length, editing, this.role, shared, p.author?.name, rec.el.classList.contains("expanded")]);
    rec.text.hidden = editing;
    if (sig === rec.sig) return;
    rec.sig = sig;
    const mine = p.author?.id === this.me.id;
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
            disabled: !prev || !this.isParticipant,
            onclick: () => prev && this.select(prev),
          }),
          h("span", { class: "pager-text", text: `${index + 1}/${branches.length}` }),
          iconButton("right", t("next_branch"), {
            class: "icon-btn sm",
            "data-testid": "branch-next",
            "data-focus-key": `${p.id}:bnext`,
            disabled: !next || !this.isParticipant,
            onclick: () => next && this.select(next),
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
            this.structureDirty = true;
            this.schedule();
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
    if (this.canSend() && !editing) {
      actions.append(
        iconButton("edit", t("edit_prompt"), {
          "data-testid": "edit-prompt",
          "data-focus-key": `${p.id}:edit`,
          onclick: () => this.startEdit(p),
        }),
      );
    }
    if (this.isOwner || (this.isParticipant && mine)) {
      actions.append(
        iconButton("trash", t("delete_prompt"), {
          "data-testid": "delete-prompt",
          "data-focus-key": `${p.id}:delete`,
          class: "icon-btn danger-hover",
          onclick: () => this.deleteMessage(p, t("delete_prompt_confirm")),
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
    this.structureDirty = true;
    this.schedule();
  }

  editor(p) {
    const area = h("textarea", {
      class: "edit-area",
      value: p.content,
      rows: Math.min(12, Math.max(2, p.content.split("\n").length)),
      "aria-label": t("edit_prompt"),
      "data-testid": "edit-area",
    });
    const cancel = () => {
      this.editing = null;
      this.structureDirty = true;
      this.schedule();
    };
    const submit = async () => {
      const content = area.value;
      if (!content.trim()) return;
      // The new branch goes to the models that answered the original prompt.
      const answered = new Set(
        [...this.msgs.values()].filter((m) => m.role === "assistant" && m.parent === p.id).map((m) => m.model),
      );
      const body = { content, parent: p.parent ?? null };
      const all = this.room?.models || [];
      if (answered.size && answered.size < all.length) body.models = [...answered];
      try {
        const res = await api.post(`/app/rooms/${this.id}/messages`, body);
        this.editing = null;
        this.accept(res);
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

  // --- highlight a prompt with its answers ---------------------------------------------------
  bindHighlight() {
    let current = null;
    const set = (pid) => {
      if (pid === current) return;
      for (const el of this.board.querySelectorAll(".hl")) el.classList.remove("hl");
      current = pid;
      if (pid) for (const el of this.board.querySelectorAll(`[data-prompt="${CSS.escape(pid)}"]`)) el.classList.add("hl");
    };
    const find = (target) => target?.closest?.(".answer, .prompt")?.dataset.prompt || null;
    this.board.addEventListener("mouseover", (e) => set(find(e.target)));
    this.board.addEventListener("mouseleave", () => set(find(document.activeElement)));
    this.board.addEventListener("focusin", (e) => set(find(e.target)));
    this.board.addEventListener("focusout", (e) => {
      if (!this.board.contains(e.relatedTarget)) set(null);
    });
  }

  // --- actions -------------------------------------------------------------------------------
  accept(res) {
    if (res.prompt) this.merge(res.prompt, true);
    for (const a of res.answers || []) this.merge(a, true);
    this.forceBottom = true;
    this.schedule();
  }

  async select(m) {
    const local = this.msgs.get(m.id);
    if (local) {
      local.selected = true;
      applySelected(this.msgs, local);
      this.structureDirty = true;
      this.schedule();
    }
    try {
      await api.post(`/app/messages/${m.id}/select`, {});
    } catch (err) {
      toast(err.message);
    }
  }

  async regenerate(m) {
    try {
      this.merge(await api.post(`/app/messages/${m.id}/regenerate`, {}), true);
    } catch (err) {
      toast(err.message);
    }
  }

  async translate(m) {
    if (m.translation?.status === "done" && m.translation.lang === lang() && m.translation.content) {
      this.showOriginal.delete(m.id);
      this.structureDirty = true;
      this.dirty.add(m.id);
      this.schedule();
      return;
    }
    // Show it running at once; the stream's events (maybe faster than this POST) take over.
    const local = this.msgs.get(m.id);
    const before = local?.translation ?? null;
    if (local) {
      local.translation = { lang: lang(), content: "", status: "running" };
      this.tseq.delete(m.id);
      this.showOriginal.delete(m.id);
      this.structureDirty = true;
      this.dirty.add(m.id);
      this.schedule();
    }
    try {
      this.merge(await api.post(`/app/messages/${m.id}/translate`, { lang: lang() }), true);
    } catch (err) {
      toast(err.message);
      if (local && local.translation?.status === "running" && !local.translation.content) {
        local.translation = before;
        this.structureDirty = true;
        this.dirty.add(m.id);
        this.schedule();
      }
    }
  }

  async rate(m, rating) {
    const current = m.feedback?.rating || 0;
    const next = current === rating ? 0 : rating;
    try {
      const updated = await api.post(`/app/messages/${m.id}/feedback`, { rating: next });
      this.merge(updated, true);
      this.feedbackOpen = next !== 0 && this.app.can("Room_update_detail_feedback") ? { id: m.id, rating: next } : null;
      const rec = this.answerEls.get(m.id);
      if (rec) rec.panel = null;
      this.structureDirty = true;
      this.schedule();
    } catch (err) {
      toast(err.message);
    }
  }

  async deleteMessage(m, question) {
    if (!(await confirmDialog(question, t("delete")))) return;
    try {
      await api.post(`/app/messages/${m.id}/delete`, {});
      this.merge({ id: m.id, deleted: true });
    } catch (err) {
      toast(err.message);
    }
  }

  toggleQuote(m) {
    if (this.quotes.some((q) => q.id === m.id)) this.quotes = this.quotes.filter((q) => q.id !== m.id);
    else this.quotes.push({ id: m.id, model: m.model, name: this.model(m.model).name, text: m.content });
    this.renderChips();
    this.structureDirty = true;
    this.schedule();
    this.textarea?.focus({ preventScroll: true });
  }

  // --- composer ------------------------------------------------------------------------------
  composerMode() {
    if (!this.room) return "none";
    return this.canSend() ? "send" : "view";
  }

  buildComposer() {
    this.builtMode = this.composerMode();
    if (!this.room) {
      this.footer.replaceChildren();
      return;
    }
    if (!this.canSend()) {
      this.textarea = null;
      this.chips = null;
      this.footer.replaceChildren(
        h(
          "div",
          { class: "viewer-note", "data-testid": "viewer-note" },
          icon("eye", 16),
          h("span", { text: this.isParticipant ? t("no_send_permission") : t("viewer_note") }),
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
      this.chips,
      this.textarea,
      h(
        "div",
        { class: "composer-row" },
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
    this.footer.replaceChildren(form);
    this.renderChips();
    this.renderComposerState();
  }

  autosize() {
    const ta = this.textarea;
    if (!ta) return;
    ta.style.height = "auto";
    ta.style.height = `${Math.min(ta.scrollHeight + 2, Math.round(window.innerHeight * 0.4))}px`;
  }

  renderComposerState() {
    this.arenaBar?.render();
    if (this.builtMode !== this.composerMode()) {
      this.buildComposer();
      return;
    }
    if (!this.room) return;
    if (!this.textarea) return;
    const running = this.anyRunning();
    this.stopBtn.hidden = !running;
    this.sendBtn.disabled = this.sending;
    const chained = Boolean(this.room.chained);
    this.chainedBox.checked = chained;
    this.chainedBox.disabled = !this.isOwner;
    this.chainedLabel.textContent = chained ? t("chained") : t("single_turn");
    const names = (this.direct.size ? [...this.direct] : this.room.models || []).map((c) => this.model(c).name);
    let placeholder = t("message_placeholder");
    if (names.length > 2) placeholder = t("message_to_n", { n: names.length });
    else if (names.length) placeholder = t("message_to", { names: names.join(", ") });
    if (this.textarea.placeholder !== placeholder) this.textarea.placeholder = placeholder;
  }

  renderChips() {
    if (!this.chips) return;
    const chips = [];
    if (this.direct.size) {
      const names = [...this.direct].map((c) => this.model(c).name).join(", ");
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
              this.structureDirty = true;
              this.schedule();
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
              this.quotes = this.quotes.filter((x) => x.id !== q.id);
              this.renderChips();
              this.structureDirty = true;
              this.schedule();
            },
          }),
        ),
      );
    }
    this.chips.replaceChildren(...chips);
    this.chips.hidden = !chips.length;
  }

  async send() {
    if (this.sending || !this.textarea) return;
    const content = composeQuoted(this.textarea.value, this.quotes);
    if (!content.trim()) {
      this.textarea.focus();
      return;
    }
    const body = { content };
    if (this.direct.size) body.models = (this.room.models || []).filter((c) => this.direct.has(c));
    this.sending = true;
    this.renderComposerState();
    try {
      const res = await api.post(`/app/rooms/${this.id}/messages`, body);
      this.textarea.value = "";
      this.autosize();
      this.quotes = [];
      this.renderChips();
      this.accept(res);
      this.app.sidebar.bump(this.id);
      if (!this.room.title) this.refreshMeta();
    } catch (err) {
      toast(err.message);
    } finally {
      this.sending = false;
      this.renderComposerState();
      this.textarea?.focus({ preventScroll: true });
    }
  }

  /** The room's title comes from its first prompt (set by the server). */
  async refreshMeta(always = false) {
    try {
      const room = await api.get(`/app/rooms/${this.id}`);
      if (this.closed) return;
      if (always || (room.title && room.title !== this.room.title)) this.onRoom(room);
    } catch (err) {
      if (err.status === 404 || err.status === 403) this.onGone(err.message);
    }
  }

  async stop() {
    try {
      await api.post(`/app/rooms/${this.id}/stop`, {});
    } catch (err) {
      toast(err.message);
    }
  }

  async setChained(chained) {
    try {
      const room = await api.post(`/app/rooms/${this.id}`, { chained });
      this.onRoom(room);
    } catch (err) {
      toast(err.message);
      this.renderComposerState();
    }
  }
}
