// A room's documents: the strip of files above the composer (upload by button, drag and drop
// or paste; indexing progress; remove), numbered citations in answers ([n] opens the passage)
// and the side panel that shows a passage with its file and page. Owned by a RoomView
// (room.js). Model and file text only ever reaches the page as text nodes.
import { api } from "./api.js";
import { h, icon, iconButton, toast } from "./dom.js";
import { t } from "./i18n.js";

export const UPLOAD = "Room_update_upload_file";
export const ACCEPT = ".pdf,.docx,.pptx,.xlsx,.xlsm,.csv,.tsv,.txt,.md,.markdown,.html,.htm";
const CITE = /\[(\d{1,2})\]/g;
const HAS_CITE = /\[\d{1,2}\]/;
const SKIP = new Set(["CODE", "PRE", "A", "BUTTON"]);
const PAPERCLIP = "M8 12.5l6.4-6.4a3 3 0 0 1 4.3 4.3l-8.1 8.1a5 5 0 0 1-7.1-7.1L11 3.9";

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)kuwa_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

/** POST a file as the raw body to `url` (with `?name=`); its JSON, or an Error saying why. */
export async function postFile(url, file) {
  let r;
  try {
    r = await fetch(`${url}?name=${encodeURIComponent(file.name)}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { accept: "application/json", "x-csrftoken": csrfToken(), "content-type": "application/octet-stream" },
      body: file,
    });
  } catch {
    throw new Error(`${file.name}: ${t("error_network")}`);
  }
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`${file.name}: ${data?.error?.message || t("error_status", { status: r.status })}`);
  return data;
}

export function clipIcon(size = 18) {
  const svg = icon("copy", size);
  svg.querySelector("path").setAttribute("d", PAPERCLIP);
  return svg;
}

export class Files {
  constructor(view) {
    this.view = view;
    this.files = []; // the room's documents, as GET /app/rooms/{id}/files lists them
    this.uploading = []; // names being sent
    this.timer = 0;
    this.polls = 0; // polls in a row while a file is being read: slower after a while
    this.strip = h("div", { class: "file-strip", "data-testid": "files", "aria-live": "polite", hidden: true });
    this.input = h("input", {
      type: "file",
      multiple: true,
      accept: ACCEPT,
      hidden: true,
      "data-testid": "file-input",
      onchange: () => {
        this.upload([...this.input.files]);
        this.input.value = "";
      },
    });
  }

  canUpload() {
    return this.view.canSend() && this.view.app.can(UPLOAD);
  }

  /** The composer's paperclip button (with its hidden file input). */
  button() {
    const b = iconButton("copy", t("attach_files"), {
      class: "icon-btn attach",
      "data-testid": "attach",
      onclick: () => this.input.click(),
    });
    b.replaceChildren(clipIcon());
    return h("span", { class: "attach-wrap" }, b, this.input);
  }

  /** Drag and drop onto `target` (the room) and paste into `textarea` upload files. */
  bind(target, textarea) {
    textarea?.addEventListener("paste", (e) => {
      const files = [...(e.clipboardData?.files || [])];
      if (!files.length || !this.canUpload()) return;
      e.preventDefault();
      this.upload(files);
    });
    if (!target) return;
    let depth = 0;
    const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
    target.addEventListener("dragenter", (e) => {
      if (!hasFiles(e) || !this.canUpload()) return;
      e.preventDefault();
      depth += 1;
      target.dataset.dropLabel = t("drop_files");
      target.classList.add("dropping");
    });
    target.addEventListener("dragover", (e) => {
      if (hasFiles(e) && this.canUpload()) e.preventDefault();
    });
    target.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) target.classList.remove("dropping");
    });
    target.addEventListener("drop", (e) => {
      depth = 0;
      target.classList.remove("dropping");
      if (!hasFiles(e) || !this.canUpload()) return;
      e.preventDefault();
      this.upload([...e.dataTransfer.files]);
    });
  }

  async load() {
    if (!this.view.id || this.view.closed) return;
    try {
      const res = await api.get(`/app/rooms/${this.view.id}/files`);
      this.files = res.files || [];
    } catch {
      return; // the room is gone or not mine any more: the stream says so
    }
    this.render();
    clearTimeout(this.timer);
    if (this.files.some((f) => f.status === "queued" || f.status === "indexing")) {
      this.polls += 1;
      this.timer = setTimeout(() => this.load(), this.polls < 60 ? 1000 : 5000);
    } else this.polls = 0;
  }

  async upload(list) {
    for (const file of list) {
      this.uploading.push(file.name);
      this.render();
      try {
        await postFile(`/app/rooms/${this.view.id}/files`, file);
      } catch (err) {
        toast(err.message);
      } finally {
        this.uploading.splice(this.uploading.indexOf(file.name), 1);
      }
    }
    await this.load();
  }

  async remove(f) {
    try {
      await api.post(`/app/files/${encodeURIComponent(f.id)}/delete`, {});
    } catch (err) {
      toast(err.message);
    }
    await this.load();
  }

  /** Whether `fileId` is one of the room's files (which its people may download). */
  has(fileId) {
    return this.files.some((f) => f.id === fileId);
  }

  mayRemove(f) {
    return this.view.isOwner || f.owner === this.view.room?.me?.id;
  }

  render() {
    const chips = this.files.map((f) => {
      const busy = f.status === "queued" || f.status === "indexing";
      let state = "";
      if (busy) state = f.pages ? t("indexing_progress", { done: f.done, pages: f.pages }) : t("indexing");
      else if (f.status === "failed") state = t("file_failed");
      const chip = h(
        "span",
        {
          class: `chip file-chip ${f.status}`,
          "data-testid": `file-${f.id}`,
          "data-status": f.status,
          title: f.error || f.name,
        },
        busy ? h("span", { class: "spinner", "aria-hidden": "true" }) : clipIcon(14),
        h("span", { class: "chip-name", text: f.name }),
        state ? h("span", { class: "chip-text", text: state }) : null,
      );
      if (this.mayRemove(f) && this.view.canSend()) {
        chip.append(
          iconButton("close", t("remove_file", { name: f.name }), {
            class: "icon-btn xs",
            "data-testid": "remove-file",
            onclick: () => this.remove(f),
          }),
        );
      }
      return chip;
    });
    for (const name of this.uploading) {
      chips.push(
        h(
          "span",
          { class: "chip file-chip queued", "data-testid": "file-uploading" },
          h("span", { class: "spinner", "aria-hidden": "true" }),
          h("span", { class: "chip-name", text: name }),
          h("span", { class: "chip-text", text: t("uploading") }),
        ),
      );
    }
    this.strip.replaceChildren(...chips);
    this.strip.hidden = !chips.length;
  }

  close() {
    clearTimeout(this.timer);
    panel().hide();
  }
}

// --- citations in answers -------------------------------------------------------------------
/** Turn `[n]` in a rendered answer into buttons that open passage n; add the sources list.
 * `downloadable(fileId)`: whether the panel may offer the file itself (a room's file: yes; a
 * bot's knowledge: only its editors may download it). */
export function decorateCitations(body, citations, downloadable = () => true) {
  if (!citations?.length) return;
  const byN = new Map(citations.map((c) => [c.n, c]));
  const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el && el !== body; el = el.parentElement) {
        if (SKIP.has(el.tagName)) return NodeFilter.FILTER_REJECT;
      }
      return HAS_CITE.test(node.nodeValue) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP;
    },
  });
  const nodes = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) nodes.push(n);
  for (const node of nodes) {
    const text = node.nodeValue;
    const parts = [];
    let last = 0;
    CITE.lastIndex = 0;
    for (let m = CITE.exec(text); m; m = CITE.exec(text)) {
      const cite = byN.get(Number(m[1]));
      if (!cite) continue;
      if (m.index > last) parts.push(document.createTextNode(text.slice(last, m.index)));
      parts.push(citeButton(cite, "cite", downloadable));
      last = m.index + m[0].length;
    }
    if (!parts.length) continue;
    if (last < text.length) parts.push(document.createTextNode(text.slice(last)));
    node.replaceWith(...parts);
  }
  body.append(
    h(
      "div",
      { class: "sources", "data-testid": "sources", role: "group", "aria-label": t("sources") },
      h("span", { class: "sources-label", text: t("sources") }),
      ...citations.map((c) => citeButton(c, "source", downloadable)),
    ),
  );
}

function where(c) {
  return c.page != null ? t("file_page", { name: c.name, page: c.page }) : c.name;
}

function citeButton(c, kind, downloadable) {
  const label = kind === "cite" ? String(c.n) : `[${c.n}] ${where(c)}`;
  return h("button", {
    type: "button",
    class: kind === "cite" ? "cite" : "chip source",
    "data-testid": kind === "cite" ? `cite-${c.n}` : `source-${c.n}`,
    "aria-label": t("open_passage", { n: c.n, where: where(c) }),
    title: where(c),
    text: label,
    onclick: (e) => {
      e.stopPropagation();
      panel().show(c, e.currentTarget, downloadable(c.file));
    },
  });
}

// --- the side panel -------------------------------------------------------------------------
let thePanel = null;

function panel() {
  if (!thePanel) thePanel = new PassagePanel();
  return thePanel;
}

class PassagePanel {
  constructor() {
    this.title = h("h2", { class: "passage-title", id: "passage-title" });
    this.where = h("p", { class: "passage-where muted" });
    this.text = h("blockquote", { class: "passage-text", "data-testid": "passage-text" });
    this.link = h("a", { class: "passage-link", "data-testid": "passage-download" });
    this.opener = null;
    this.el = h(
      "aside",
      {
        class: "passage-panel",
        role: "dialog",
        "aria-labelledby": "passage-title",
        "data-testid": "passage-panel",
        hidden: true,
      },
      h(
        "div",
        { class: "passage-head" },
        this.title,
        iconButton("close", t("close"), { "data-testid": "passage-close", onclick: () => this.hide() }),
      ),
      this.where,
      this.text,
      this.link,
    );
    this.el.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.hide();
    });
    document.body.append(this.el);
  }

  show(c, opener, download = true) {
    this.opener = opener;
    this.title.textContent = t("passage_n", { n: c.n });
    this.where.textContent = where(c);
    this.text.textContent = c.text;
    this.link.textContent = t("download_file", { name: c.name });
    this.link.href = `/app/files/${encodeURIComponent(c.file)}/content`;
    this.link.hidden = !download;
    this.el.hidden = false;
    this.el.querySelector("button").focus();
  }

  hide() {
    if (this.el.hidden) return;
    this.el.hidden = true;
    this.opener?.focus?.({ preventScroll: true });
    this.opener = null;
  }
}
