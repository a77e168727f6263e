// An open room's event stream (/app/rooms/{id}/events) and how what it says — and what a POST
// answers — merges into the view's messages: whole messages, answer deltas and translations.
// The room-level events (hello, room, gone, presence) go to the RoomView (room.js).
import { api } from "./api.js";
import { h } from "./dom.js";
import { lang, t } from "./i18n.js";
import { applySelected } from "./thread.js";

export class RoomStream {
  constructor(view) {
    this.view = view;
    this.es = null;
    this.retryTimer = 0;
    this.seq = new Map(); // answer id → last delta seq applied
    this.tseq = new Map(); // answer id → last translation seq applied
    this.pending = new Map(); // deltas for answers not known yet
    this.replaying = null; // answer ids whose next delta replays the job from its start
    this.replayingTr = null; // the same for translations
    /** "Reconnecting…" above the board while the stream is down. */
    this.status = h("div", { class: "conn", role: "status", hidden: true });
  }

  connect() {
    const view = this.view;
    if (view.closed) return;
    const es = new EventSource(`/app/rooms/${view.id}/events`);
    this.es = es;
    const on = (name, fn) =>
      es.addEventListener(name, (e) => {
        if (view.closed || this.es !== es) return;
        let data;
        try {
          data = JSON.parse(e.data);
        } catch {
          return;
        }
        fn(data);
      });
    on("hello", (d) => view.onHello(d.room));
    on("message", (m) => this.merge(m));
    on("delta", (d) => this.onDelta(d));
    on("translation", (d) => this.onTranslation(d));
    on("presence", (d) => view.onPresence(d.users || []));
    on("room", (r) => view.onRoom(r));
    on("files", () => view.files.load());
    on("gone", (d) => view.onGone(d.code ? t(`gone_${d.code}`) : d.reason));
    es.addEventListener("open", () => this.setConn(null));
    es.addEventListener("error", () => {
      if (view.closed || this.es !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // Refused (not a member any more, deleted, signed out…): find out why, maybe retry.
        this.setConn(t("reconnecting"));
        this.checkAccess();
      } else {
        this.setConn(t("reconnecting"));
      }
    });
  }

  close() {
    if (this.es) this.es.close();
    clearTimeout(this.retryTimer);
  }

  async checkAccess() {
    const view = this.view;
    try {
      await api.get(`/app/rooms/${view.id}`);
      this.retryTimer = setTimeout(() => this.connect(), 2000);
    } catch (err) {
      if (err.status === 404 || err.status === 403) view.onGone(err.message);
      else if (err.status === 401) location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
      else this.retryTimer = setTimeout(() => this.connect(), 4000);
    }
  }

  setConn(text) {
    this.status.hidden = !text;
    this.status.textContent = text || "";
  }

  /** After hello (the view's messages are the room's now): running jobs replay from the start. */
  restart() {
    const msgs = this.view.msgs;
    this.seq.clear();
    this.tseq.clear();
    this.replaying = new Set([...msgs.values()].filter((m) => m.status === "running").map((m) => m.id));
    this.replayingTr = new Set(
      [...msgs.values()].filter((m) => m.translation?.status === "running").map((m) => m.id),
    );
  }

  /**
   * A message from the stream, or (`snapshot`) from a POST's answer. The stream is the source
   * of truth and delivers every change in order; a POST's copy may be older than what the
   * stream already said (an answer that finished before the POST returned), so it only adds
   * messages not seen yet, finished states and my feedback.
   */
  merge(m, snapshot = false) {
    const view = this.view;
    if (!m || typeof m.id !== "number") return;
    if (snapshot && view.msgs.has(m.id) && !m.deleted) {
      const old = view.msgs.get(m.id);
      const next = { ...old, feedback: m.feedback === undefined ? old.feedback : m.feedback };
      if (old.status === "running" && m.status && m.status !== "running") {
        Object.assign(next, { status: m.status, content: m.content, error: m.error });
      }
      if (old.translation?.status === "running" && m.translation && m.translation.status !== "running") {
        next.translation = m.translation;
      }
      view.msgs.set(m.id, next);
      view.structureDirty = true;
      view.dirty.add(m.id);
      view.schedule();
      return;
    }
    if (m.deleted) {
      view.msgs.delete(m.id);
      view.answers.forget(m.id);
      view.prompts.forget(m.id);
      view.composer.unquote(m.id);
      view.structureDirty = true;
      view.schedule();
      return;
    }
    const old = view.msgs.get(m.id);
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
      view.answers.showOriginal.delete(m.id);
    }
    view.msgs.set(m.id, next);
    applySelected(view.msgs, next);
    if (this.pending.has(m.id)) {
      const queued = this.pending.get(m.id);
      this.pending.delete(m.id);
      for (const d of queued) this.onDelta(d);
    }
    view.structureDirty = true;
    view.dirty.add(m.id);
    view.schedule();
  }

  onDelta({ id, text, seq }) {
    const view = this.view;
    const m = view.msgs.get(id);
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
    view.dirty.add(id);
    view.schedule();
  }

  onTranslation({ id, text, seq, done }) {
    const view = this.view;
    const m = view.msgs.get(id);
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
    view.dirty.add(id);
    view.schedule();
  }
}
