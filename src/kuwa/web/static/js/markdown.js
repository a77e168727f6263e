// Markdown → sanitised HTML: markdown-it (no raw HTML) → DOMPurify → highlight.js.
// Model, user and bot text reaches innerHTML only through render() below.
import { t } from "./i18n.js";

let md = null;
let hooked = false;

function parser() {
  if (!md) {
    md = window.markdownit({ html: false, linkify: true, breaks: false });
  }
  if (!hooked && window.DOMPurify) {
    window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A" && node.hasAttribute("href")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
    });
    hooked = true;
  }
  return md;
}

export function ready() {
  return Boolean(window.markdownit && window.DOMPurify);
}

/** Render `text` as markdown into `el` (replacing its content). */
export function render(el, text) {
  if (!ready()) {
    el.textContent = text; // the libraries failed to load: plain text, still safe
    el.classList.add("plain");
    return;
  }
  const html = window.DOMPurify.sanitize(parser().render(text || ""));
  el.innerHTML = html;
  for (const code of el.querySelectorAll("pre code")) {
    if (window.hljs) {
      try {
        window.hljs.highlightElement(code);
      } catch {
        /* an unknown language: leave it plain */
      }
    }
    addCopyButton(code.parentElement);
  }
}

function addCopyButton(pre) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "code-copy";
  button.textContent = t("copy_code");
  button.addEventListener("click", async () => {
    const code = pre.querySelector("code");
    await copyText(code ? code.textContent : pre.textContent);
    button.textContent = t("copied");
    setTimeout(() => (button.textContent = t("copy_code")), 1500);
  });
  pre.classList.add("has-copy");
  pre.append(button);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // http:// on a LAN address has no async clipboard: the old way.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}
