// An open room: one column per model, prompts above each turn's answers, answers streaming in
// over the room's event stream, the composer, react buttons, versions and branches.
// RoomView holds the room and its messages, my permissions, and batches rendering into one
// animation frame; its parts live beside it:
//   room_stream.js    RoomStream   the event stream; merging messages, deltas, translations
//   room_board.js     Board        the columns, tabs and highlight
//   room_answers.js   Answers      answer records, react buttons, versions, feedback, translate
//   room_prompts.js   Prompts      prompt records, branches, the editor
//   room_composer.js  Composer     the message box, chips (direct send, quotes), chained
//   room_header.js    RoomHeader   presence and the room's buttons in the top bar
//   room_files.js     Files        the room's documents, citations and the passage panel
import { api } from "./api.js";
import { ArenaBar } from "./arena.js";
import { confirmDialog, h, toast } from "./dom.js";
import { t } from "./i18n.js";
import { Answers } from "./room_answers.js";
import { Board } from "./room_board.js";
import { Composer } from "./room_composer.js";
import { Files } from "./room_files.js";
import { RoomHeader } from "./room_header.js";
import { Prompts } from "./room_prompts.js";
import { RoomStream } from "./room_stream.js";
import { loadBots, modelInfo } from "./store.js";
import { applySelected } from "./thread.js";

const NEAR_BOTTOM = 96;
const IMPORT = "Room_update_import_chat";

export class RoomView {
  constructor(app, id, preset) {
    this.app = app;
    this.id = id;
    this.room = preset ? { ...preset } : null;
    this.msgs = new Map();
    for (const m of preset?.messages || []) this.msgs.set(m.id, { ...m });
    this.dirty = new Set(); // message ids whose text to render in the next frame
    this.structureDirty = true; // the board to render in the next frame
    this.raf = 0;
    this.closed = false;
    this.forceBottom = true;
    this.stream = new RoomStream(this);
    this.board = new Board(this);
    this.answers = new Answers(this);
    this.prompts = new Prompts(this);
    this.files = new Files(this);
    this.composer = new Composer(this);
    this.header = new RoomHeader(this);
  }

  // --- lifecycle -----------------------------------------------------------------------------
  mount(container) {
    this.scroller = h(
      "div",
      { class: "board-scroll", "data-testid": "board" },
      this.board.el,
      this.board.emptyHint,
    );
    this.arenaBar = new ArenaBar(this);
    this.el = h(
      "div",
      { class: "room", "aria-busy": this.room ? null : "true" },
      this.board.tabs,
      this.stream.status,
      this.scroller,
      this.arenaBar.el,
      this.composer.el,
    );
    container.replaceChildren(this.el);
    this.files.bind(this.el);
    this.board.bindHighlight();
    this.scroller.addEventListener("scroll", () => {
      this.pinned = this.isNearBottom();
    });
    this.pinned = true;
    if (this.room) this.app.setTitle(this.room.title || t("untitled"));
    else this.app.setTitle("");
    this.composer.build();
    this.header.render();
    this.schedule();
    Promise.all([this.app.loadModels(), loadBots(this.app)]).then(() => {
      this.structureDirty = true;
      this.header.render();
      this.schedule();
    });
    this.stream.connect();
  }

  unmount() {
    this.closed = true;
    this.files.close();
    this.stream.close();
    if (this.raf) cancelAnimationFrame(this.raf);
    this.header.clear();
  }

  // --- the room's own events (the stream's: hello, room, gone, presence) ----------------------
  onHello(room) {
    const { messages, ...meta } = room;
    this.room = meta;
    this.msgs = new Map((messages || []).map((m) => [m.id, { ...m }]));
    this.stream.restart();
    this.el.removeAttribute("aria-busy");
    // Forget quotes of messages that are gone.
    this.composer.quotes = this.composer.quotes.filter((q) => this.msgs.has(q.id));
    this.app.setTitle(meta.title || t("untitled"));
    this.structureDirty = true;
    this.header.render();
    this.renderComposerState();
    this.schedule();
    this.files.load();
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
    this.header.render();
    if (roleChanged) this.composer.build();
    this.renderComposerState();
    this.schedule();
    this.header.shareDialog?.update(this.room);
  }

  onGone(reason) {
    if (this.closed) return;
    if (this.stream.es) this.stream.es.close();
    toast(reason || t("room_gone"), "info");
    this.app.sidebar.remove(this.id);
    this.app.navigate("/", { replace: true });
  }

  onPresence(users) {
    this.header.setPresence(users);
  }

  /** A message from the stream or (`snapshot`) a POST's answer: see RoomStream.merge. */
  merge(m, snapshot = false) {
    this.stream.merge(m, snapshot);
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
      this.board.render();
    }
    const now = performance.now();
    for (const id of [...this.dirty]) {
      // A very long answer that renders slowly is re-rendered less often while it streams.
      if (this.answers.waiting(id, now)) continue;
      this.dirty.delete(id);
      this.answers.renderContent(id);
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

  /** Below the board: the arena bar (an arena room's vote), then the composer. */
  renderComposerState() {
    this.arenaBar?.render();
    this.composer.render();
  }

  // --- actions shared by answers and prompts -------------------------------------------------
  /** A POST's answer ({prompt, answers}): merge it and scroll to it. */
  accept(res) {
    if (res.prompt) this.merge(res.prompt, true);
    for (const a of res.answers || []) this.merge(a, true);
    this.forceBottom = true;
    this.schedule();
  }

  /** Show this version of an answer or this branch of a prompt. */
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

  async deleteMessage(m, question) {
    if (!(await confirmDialog(question, t("delete")))) return;
    try {
      await api.post(`/app/messages/${m.id}/delete`, {});
      this.merge({ id: m.id, deleted: true });
    } catch (err) {
      toast(err.message);
    }
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
}
