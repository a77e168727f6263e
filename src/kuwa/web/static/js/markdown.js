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
    const fenced = languageOf(code); // the fence's info string (```python); hljs only guesses
    if (window.hljs) {
      try {
        window.hljs.highlightElement(code);
      } catch {
        /* an unknown language: leave it plain */
      }
    }
    addCodeHead(code.parentElement, fenced);
  }
}

/** The language a fence named (markdown-it's `language-…` class), or "". */
function languageOf(code) {
  for (const name of code.classList) {
    if (name.startsWith("language-") && name.length > 9) return name.slice(9);
  }
  return "";
}

/** A bar above a code block: its language (as text, never markup) and a copy button. */
function addCodeHead(pre, language) {
  const head = document.createElement("div");
  head.className = "code-head";
  const label = document.createElement("span");
  label.className = "code-lang";
  label.textContent = language.toLowerCase() || t("code_plain");
  head.append(label, copyButton(pre));
  const block = document.createElement("div");
  block.className = "code-block";
  pre.before(block);
  block.append(head, pre);
}

function copyButton(pre) {
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
  return button;
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
