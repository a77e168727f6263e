// Small DOM helpers. Text always goes in through textContent; the only HTML this page
// inserts from data is sanitised markdown (see markdown.js) and our own constant SVG icons.
import { t } from "./i18n.js";

/** h("button", {class: "x", onclick: fn, "data-testid": "send"}, "Send", otherNode) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "text") {
      el.textContent = value;
    } else if (key === "style" && typeof value === "object") {
      for (const [prop, v] of Object.entries(value)) el.style.setProperty(prop, v);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else if (key in el && !key.includes("-") && key !== "list" && key !== "form") {
      el[key] = value;
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// --- icons (constant path data, 24×24, stroke) ---------------------------------------------
const ICONS = {
  plus: "M12 5v14M5 12h14",
  send: "M5 12h13M13 6l6 6-6 6",
  stop: "M7 7h10v10H7z",
  copy: "M9 9h10v10H9zM5 15V5h10",
  check: "M5 12l5 5 9-10",
  quote: "M7 7h4v4c0 3-1.5 5-4 6M14 7h4v4c0 3-1.5 5-4 6",
  translate: "M4 5h9M8.5 3v2M6 5c.5 3 2.5 6 6 8M11 5c-.8 3.5-3.5 7-7 9M13 20l4-9 4 9M14.5 17h5",
  up: "M7 11v9H4v-9zM7 11l4-8c1.5 0 2.5 1 2.2 2.6L12.6 9H18a2 2 0 0 1 2 2.3l-1.2 6.5A2.5 2.5 0 0 1 16.3 20H7",
  down: "M7 13V4H4v9zM7 13l4 8c1.5 0 2.5-1 2.2-2.6L12.6 15H18a2 2 0 0 0 2-2.3l-1.2-6.5A2.5 2.5 0 0 0 16.3 4H7",
  regenerate: "M20 11a8 8 0 1 0-2.3 5.7M20 4v7h-7",
  trash: "M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3",
  undo: "M9 14L4 9l5-5M4 9h10.5a5.5 5.5 0 0 1 0 11H11",
  sliders: "M4 6h9M17 6h3M4 12h3M11 12h9M4 18h11M19 18h1M15 4v4M9 10v4M17 16v4",
  edit: "M4 20h4L19 9l-4-4L4 16zM13.5 6.5l4 4",
  left: "M15 5l-7 7 7 7",
  right: "M9 5l7 7-7 7",
  close: "M6 6l12 12M18 6L6 18",
  menu: "M4 7h16M4 12h16M4 17h16",
  search: "M10.5 17a6.5 6.5 0 1 0 0-13 6.5 6.5 0 0 0 0 13zM15.5 15.5L20 20",
  share: "M16 8a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM8 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM16 22a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM10.7 13.5l2.6 1.5M13.3 7l-2.6 1.5",
  sun: "M12 16a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4",
  moon: "M20 14.5A8 8 0 0 1 9.5 4a8 8 0 1 0 10.5 10.5z",
  globe: "M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM3 12h18M12 3c2.5 2.5 3.5 5.5 3.5 9s-1 6.5-3.5 9c-2.5-2.5-3.5-5.5-3.5-9s1-6.5 3.5-9z",
  chain: "M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1",
  sidebar: "M4 4h16v16H4zM9 4v16",
  users: "M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM2 21v-1a6 6 0 0 1 12 0v1M16 3.5a4 4 0 0 1 0 7.5M22 21v-1a6 6 0 0 0-4-5.6",
  eye: "M2 12s3.5-7 10-7 10 7 10 7-3.5 7-10 7S2 12 2 12zM12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z",
  target: "M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM12 16a4 4 0 1 0 0-8 4 4 0 0 0 0 8z",
  chat: "M4 5h16v11H9l-5 4z",
};

const SVG = "http://www.w3.org/2000/svg";

export function icon(name, size = 18) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "1.8");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  svg.setAttribute("aria-hidden", "true");
  svg.classList.add("icon");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[name] || "");
  svg.append(path);
  return svg;
}

/** An icon-only button with an accessible name (and a tooltip). */
export function iconButton(name, label, attrs = {}) {
  return h(
    "button",
    { type: "button", class: "icon-btn", "aria-label": label, title: label, ...attrs },
    icon(name),
  );
}

// --- avatars --------------------------------------------------------------------------------
export function initials(name) {
  const words = String(name || "?").trim().split(/[\s_\-.]+/).filter(Boolean);
  if (!words.length) return "?";
  const first = Array.from(words[0]);
  // CJK names: the first character reads better than two letters.
  if (/[\u3000-\u9fff\uac00-\ud7af]/.test(first[0])) return first[0];
  if (words.length === 1) return first.slice(0, 2).join("").toUpperCase();
  return (first[0] + Array.from(words[1])[0]).toUpperCase();
}

export function hue(text) {
  let n = 2166136261; // FNV-1a: near names get far-apart colours
  for (const ch of String(text)) n = Math.imul(n ^ ch.codePointAt(0), 16777619) >>> 0;
  return n % 360;
}

const SAFE_IMAGE = /^(https?:\/\/|\/(?!\/)|data:image\/(png|jpe?g|gif|webp);)/i;

/** A round avatar: the image when it has a safe URL, else initials on a colour from `key`. */
export function avatar(name, image, key, size = "md") {
  const el = h("span", { class: `avatar avatar-${size}`, "aria-hidden": "true" });
  el.style.setProperty("--h", String(hue(key || name)));
  const letters = () => {
    // A blinded arena side ("arena:A") shows its letter, never anything of the model.
    const text = String(key).startsWith("arena:") ? String(key).slice(6) : initials(name);
    el.replaceChildren(document.createTextNode(size === "xs" ? Array.from(text)[0] : text));
    el.classList.remove("has-img");
  };
  if (image && SAFE_IMAGE.test(image)) {
    const img = h("img", { alt: "", src: image, loading: "lazy", decoding: "async" });
    img.addEventListener("error", letters, { once: true });
    el.classList.add("has-img");
    el.append(img);
  } else {
    letters();
  }
  return el;
}

// --- toasts ---------------------------------------------------------------------------------
let toastBox = null;

export function toast(message, kind = "error", timeout = 9000) {
  if (!toastBox) {
    toastBox = h("div", { class: "toasts", role: "region", "aria-label": t("notifications") });
    document.body.append(toastBox);
  }
  const close = () => {
    item.classList.add("leaving");
    setTimeout(() => item.remove(), 180);
  };
  const item = h(
    "div",
    { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status", "data-testid": "toast" },
    h("span", { class: "toast-text", text: message }),
    iconButton("close", t("dismiss"), { class: "icon-btn toast-close", onclick: close }),
  );
  toastBox.append(item);
  if (timeout) setTimeout(close, timeout);
  return item;
}

// --- a small confirm dialog (native confirm() blocks and is hard to test) ------------------
export function confirmDialog(message, okLabel, { danger = true } = {}) {
  return new Promise((resolve) => {
    const ok = h("button", {
      type: "button",
      class: danger ? "danger" : "",
      "data-testid": "confirm-ok",
      text: okLabel,
    });
    const cancel = h("button", {
      type: "button",
      class: "secondary",
      "data-testid": "confirm-cancel",
      text: t("cancel"),
    });
    const dlg = h(
      "dialog",
      { class: "dialog confirm", "aria-label": message },
      h("p", { text: message }),
      h("div", { class: "dialog-actions" }, cancel, ok),
    );
    let answer = false;
    ok.addEventListener("click", () => {
      answer = true;
      dlg.close();
    });
    cancel.addEventListener("click", () => dlg.close());
    dlg.addEventListener("close", () => {
      dlg.remove();
      resolve(answer);
    });
    document.body.append(dlg);
    dlg.showModal();
    ok.focus();
  });
}

export function relativeTime(seconds, lang) {
  if (!seconds) return "";
  const diff = seconds * 1000 - Date.now();
  const abs = Math.abs(diff);
  const rtf = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
  const units = [
    ["year", 31536e6],
    ["month", 2592e6],
    ["week", 6048e5],
    ["day", 864e5],
    ["hour", 36e5],
    ["minute", 6e4],
  ];
  for (const [unit, ms] of units) {
    if (abs >= ms) return rtf.format(Math.round(diff / ms), unit);
  }
  return rtf.format(0, "minute");
}
