// The Share dialog's read-only link: a switch (POST /app/rooms/{id}/link {"enabled"}) and,
// while it is on, the full URL with a copy button. Only the owner sees the room's `link`.
import { api } from "./api.js";
import { h, icon, iconButton, toast } from "./dom.js";
import { t } from "./i18n.js";
import { copyText } from "./markdown.js";

export function shareLinkSection(room, onChange) {
  let current = room;
  const toggle = h("input", {
    type: "checkbox",
    role: "switch",
    "data-testid": "share-link-toggle",
    "aria-describedby": "share-link-hint",
  });
  const url = h("input", {
    type: "text",
    readonly: true,
    class: "share-link-url",
    "data-testid": "share-link-url",
    "aria-label": t("share_link_url"),
    onfocus: () => url.select(),
  });
  const copyBtn = iconButton("copy", t("share_link_copy"), {
    "data-testid": "share-link-copy",
    onclick: async () => {
      const ok = await copyText(url.value);
      copyBtn.replaceChildren(icon(ok ? "check" : "copy"));
      if (ok) toast(t("share_link_copied"), "ok", 2500);
      setTimeout(() => copyBtn.replaceChildren(icon("copy")), 1500);
    },
  });
  const row = h("div", { class: "share-link-row" }, url, copyBtn);

  function render() {
    const link = current.link || null;
    toggle.checked = Boolean(link);
    row.hidden = !link;
    url.value = link ? location.origin + link : "";
  }

  toggle.addEventListener("change", async () => {
    const enabled = toggle.checked;
    toggle.disabled = true;
    try {
      const updated = await api.post(`/app/rooms/${current.id}/link`, { enabled });
      current = { ...current, ...updated, link: updated.link ?? null };
      onChange?.(updated);
      render();
      if (enabled) url.focus();
    } catch (err) {
      toast(err.message);
      render();
    } finally {
      toggle.disabled = false;
    }
  });

  const el = h(
    "section",
    { class: "share-link", "data-testid": "share-link" },
    h("h3", { text: t("share_link_title") }),
    h(
      "label",
      { class: "switch" },
      toggle,
      h(
        "span",
        { class: "switch-text" },
        h("span", { text: t("share_link_toggle") }),
        h("span", { class: "hint", id: "share-link-hint", text: t("share_link_hint") }),
      ),
    ),
    row,
  );
  render();
  return {
    el,
    update(room) {
      // Room events carry no `link`: keep ours unless the room says otherwise.
      current = { ...current, ...room, link: "link" in room ? room.link : current.link };
      render();
    },
  };
}
