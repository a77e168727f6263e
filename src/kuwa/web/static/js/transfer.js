// A room's export menu (JSON, TSV, Word: plain downloads) and import dialog (a file or pasted
// text sent as the raw request body of POST /app/rooms/{id}/import).
import { h, icon, iconButton } from "./dom.js";
import { t } from "./i18n.js";

const FORMATS = [
  ["json", "export_json"],
  ["tsv", "export_tsv"],
  ["docx", "export_docx"],
];

const PATHS = {
  download: "M12 4v11M7 10l5 5 5-5M5 20h14",
  upload: "M12 15V4M7 9l5-5 5 5M5 20h14",
};

/** dom.js's icon() with a path of our own. */
export function pathIcon(name, size = 18) {
  const svg = icon("copy", size);
  svg.querySelector("path").setAttribute("d", PATHS[name] || "");
  return svg;
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) return meta.content;
  const m = document.cookie.match(/(?:^|;\s*)kuwa_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

/** The header's Export button with its menu of download links. */
export function exportMenu(roomId) {
  const button = h(
    "button",
    {
      type: "button",
      class: "secondary bar-btn",
      "data-testid": "export",
      "aria-haspopup": "menu",
      "aria-expanded": "false",
      title: t("export"),
    },
    pathIcon("download", 16),
    h("span", { class: "bar-btn-text", text: t("export") }),
  );
  const menu = h(
    "div",
    { class: "menu", role: "menu", "aria-label": t("export"), hidden: true },
    FORMATS.map(([format, label]) =>
      h(
        "a",
        {
          role: "menuitem",
          class: "menu-item",
          href: `/app/rooms/${roomId}/export?format=${format}`,
          download: `kuwa-room-${roomId}.${format}`,
          "data-testid": `export-${format}`,
          onclick: () => close(),
        },
        h("span", { text: t(label) }),
        h("span", { class: "menu-ext", text: `.${format}` }),
      ),
    ),
  );
  const wrap = h("div", { class: "menu-wrap" }, button, menu);
  const items = () => [...menu.querySelectorAll("a")];

  function onDocument(e) {
    if (!wrap.contains(e.target)) close();
  }
  function open() {
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    document.addEventListener("pointerdown", onDocument, true);
  }
  function close(focus = false) {
    if (menu.hidden) return;
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    document.removeEventListener("pointerdown", onDocument, true);
    if (focus) button.focus();
  }
  button.addEventListener("click", () => (menu.hidden ? open() : close()));
  button.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") {
      e.preventDefault();
      open();
      items()[0]?.focus();
    }
  });
  menu.addEventListener("keydown", (e) => {
    const list = items();
    const i = list.indexOf(document.activeElement);
    if (e.key === "Escape") {
      e.preventDefault();
      close(true);
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const step = e.key === "ArrowDown" ? 1 : -1;
      list[(i + step + list.length) % list.length]?.focus();
    }
  });
  wrap.addEventListener("focusout", (e) => {
    if (e.relatedTarget && !wrap.contains(e.relatedTarget)) close();
  });
  return wrap;
}

/**
 * The import dialog. `onImported({pending})` after a 201; `onAttempt()` after every answer
 * (rows before a bad line are imported, so the room changed either way).
 */
export function openImport(roomId, { onImported, onAttempt } = {}) {
  const file = h("input", {
    type: "file",
    accept: ".json,.tsv,.txt,application/json,text/tab-separated-values,text/plain",
    "data-testid": "import-file",
    "aria-label": t("import_file"),
  });
  const text = h("textarea", {
    rows: 6,
    class: "import-text",
    "data-testid": "import-text",
    "aria-label": t("import_paste"),
    placeholder: t("import_paste_placeholder"),
    spellcheck: false,
  });
  const error = h("div", { class: "import-error", role: "alert", "data-testid": "import-error", hidden: true });
  const submit = h("button", { type: "submit", "data-testid": "import-submit", text: t("import_submit") });
  const cancel = h("button", { type: "button", class: "secondary", text: t("cancel"), onclick: () => dlg.close() });
  const closeBtn = iconButton("close", t("close"), { class: "icon-btn dialog-close", onclick: () => dlg.close() });

  function showError(message) {
    error.hidden = !message;
    error.textContent = message || "";
  }

  file.addEventListener("change", () => {
    showError("");
    text.disabled = file.files.length > 0;
  });
  text.addEventListener("input", () => showError(""));

  async function send() {
    const chosen = file.files[0];
    if (!chosen && !text.value.trim()) {
      showError(t("import_nothing"));
      text.focus();
      return;
    }
    const body = chosen || new TextEncoder().encode(text.value);
    submit.disabled = true;
    dlg.setAttribute("aria-busy", "true");
    showError("");
    let r;
    try {
      r = await fetch(`/app/rooms/${roomId}/import`, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          accept: "application/json",
          "content-type": "application/octet-stream",
          "x-csrftoken": csrfToken(),
        },
        body,
      });
    } catch {
      showError(t("error_network"));
      submit.disabled = false;
      dlg.removeAttribute("aria-busy");
      return;
    }
    const data = await r.json().catch(() => null);
    submit.disabled = false;
    dlg.removeAttribute("aria-busy");
    onAttempt?.();
    if (r.ok) {
      dlg.close();
      onImported?.({ pending: Number(data?.pending) || 0 });
      return;
    }
    let message = data?.error?.message;
    if (!message) {
      if (r.status === 403) message = t("error_forbidden");
      else if (r.status === 404) message = t("error_not_found");
      else if (r.status === 413) message = t("import_too_large");
      else message = t("error_status", { status: r.status });
    }
    showError(message);
  }

  const form = h(
    "form",
    {
      class: "import-form",
      onsubmit: (e) => {
        e.preventDefault();
        send();
      },
    },
    h("label", { class: "import-field" }, h("span", { text: t("import_file") }), file),
    h("div", { class: "import-or", "aria-hidden": "true" }, h("span", { text: t("import_or") })),
    h("label", { class: "import-field" }, h("span", { text: t("import_paste") }), text),
    h("p", { class: "muted small import-hint", text: t("import_formats") }),
    error,
    h("div", { class: "dialog-actions" }, cancel, submit),
  );
  const dlg = h(
    "dialog",
    { class: "dialog import-dialog", "aria-labelledby": "import-title", "data-testid": "import-dialog" },
    h("div", { class: "dialog-head" }, h("h2", { id: "import-title", text: t("import_title") }), closeBtn),
    form,
  );
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  text.focus();
  return dlg;
}
