// A bot's knowledge in the store's bot editor: the documents it answers from (with
// citations, like a room's), added and removed here; its .bot export carries them.
import { api } from "./api.js";
import { h, iconButton, toast } from "./dom.js";
import { t } from "./i18n.js";
import { ACCEPT, clipIcon, postFile } from "./room_files.js";

/** The editor's Knowledge field for bot `botId` (null: a bot not saved yet). */
export function knowledgeField(botId) {
  const wrap = h("div", { class: "field knowledge", "data-testid": "bot-knowledge" });
  const title = h("span", { class: "field-label", text: t("bot_knowledge") });
  if (botId == null) {
    wrap.append(title, h("p", { class: "muted small", text: t("bot_knowledge_new") }));
    return wrap;
  }
  const list = h("div", { class: "file-strip" });
  let timer = 0;
  const input = h("input", {
    type: "file",
    multiple: true,
    accept: ACCEPT,
    hidden: true,
    "data-testid": "knowledge-input",
    onchange: async () => {
      const files = [...input.files];
      input.value = "";
      for (const file of files) {
        try {
          await postFile(`/app/bots/${botId}/files`, file);
        } catch (err) {
          toast(err.message);
        }
      }
      await load();
    },
  });

  async function load() {
    if (!wrap.isConnected && timer) return;
    let files = [];
    try {
      files = (await api.get(`/app/bots/${botId}/files`)).files || [];
    } catch (err) {
      toast(err.message);
      return;
    }
    list.replaceChildren(
      ...files.map((f) =>
        h(
          "span",
          { class: `chip file-chip ${f.status}`, "data-testid": `knowledge-${f.id}`, "data-status": f.status, title: f.error || f.name },
          clipIcon(14),
          h("span", { class: "chip-name", text: f.name }),
          f.status === "ready" ? null : h("span", { class: "chip-text", text: f.status === "failed" ? t("file_failed") : t("indexing") }),
          iconButton("close", t("remove_file", { name: f.name }), {
            class: "icon-btn xs",
            onclick: async () => {
              try {
                await api.post(`/app/files/${encodeURIComponent(f.id)}/delete`, {});
              } catch (err) {
                toast(err.message);
              }
              await load();
            },
          }),
        ),
      ),
    );
    clearTimeout(timer);
    if (files.some((f) => f.status === "queued" || f.status === "indexing")) timer = setTimeout(load, 1000);
  }

  wrap.append(
    title,
    list,
    h(
      "div",
      { class: "bot-avatar-tools" },
      h("button", { type: "button", class: "secondary small-btn", "data-testid": "add-knowledge", text: t("add_documents"), onclick: () => input.click() }),
      h("span", { class: "muted small", text: t("bot_knowledge_hint") }),
      input,
    ),
  );
  load();
  return wrap;
}
