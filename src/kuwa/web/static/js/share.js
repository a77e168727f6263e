// The owner's Share dialog: add a person (email) or a group (name) as viewer or participant,
// change or remove members (role "none").
import { api } from "./api.js";
import { avatar, h, icon, iconButton, toast } from "./dom.js";
import { t } from "./i18n.js";

export function openShare(app, room, onChange) {
  let current = room;
  const who = h("input", {
    type: "text",
    required: true,
    autocomplete: "off",
    placeholder: t("share_who_placeholder"),
    "aria-label": t("share_who"),
    "data-testid": "share-email",
  });
  const role = h(
    "select",
    { "aria-label": t("role"), "data-testid": "share-role" },
    h("option", { value: "viewer", text: t("role_viewer") }),
    h("option", { value: "participant", text: t("role_participant") }),
  );
  const submit = h(
    "button",
    { type: "submit", "data-testid": "share-submit" },
    h("span", { text: t("share_add") }),
  );
  const list = h("ul", { class: "member-list", "data-testid": "members" });
  const closeBtn = iconButton("close", t("close"), { class: "icon-btn dialog-close", onclick: () => dlg.close() });

  async function share(body) {
    const updated = await api.post(`/app/rooms/${current.id}/share`, body);
    current = { ...current, ...updated };
    renderMembers();
    onChange?.(updated);
    return updated;
  }

  function target(member) {
    return member.kind === "group" ? { group: member.name } : { email: member.email };
  }

  function renderMembers() {
    const rows = [];
    if (current.owner) {
      rows.push(
        h(
          "li",
          { class: "member owner" },
          avatar(current.owner.name, "", `u${current.owner.id}`, "sm"),
          h("span", { class: "member-name" }, h("strong", { text: current.owner.name })),
          h("span", { class: "member-role", text: t("role_owner") }),
        ),
      );
    }
    for (const member of current.members || []) {
      const roleSelect = h(
        "select",
        {
          "aria-label": t("role_of", { name: member.name }),
          "data-testid": `member-role-${member.kind}-${member.id}`,
          onchange: async () => {
            try {
              await share({ ...target(member), role: roleSelect.value });
            } catch (err) {
              toast(err.message);
              renderMembers();
            }
          },
        },
        ["viewer", "participant"].map((r) =>
          h("option", { value: r, text: t(`role_${r}`), selected: r === member.role }),
        ),
      );
      rows.push(
        h(
          "li",
          { class: "member", "data-testid": `member-${member.kind}-${member.id}` },
          member.kind === "group"
            ? h("span", { class: "avatar avatar-sm group-avatar", "aria-hidden": "true" }, icon("users", 14))
            : avatar(member.name, "", `u${member.id}`, "sm"),
          h(
            "span",
            { class: "member-name" },
            h("strong", { text: member.name }),
            h("span", {
              class: "muted small",
              text: member.kind === "group" ? t("group") : member.email || "",
            }),
          ),
          roleSelect,
          iconButton("close", t("remove_member", { name: member.name }), {
            class: "icon-btn danger-hover",
            "data-testid": "member-remove",
            onclick: async () => {
              try {
                await share({ ...target(member), role: "none" });
              } catch (err) {
                toast(err.message);
              }
            },
          }),
        ),
      );
    }
    if (!(current.members || []).length) rows.push(h("li", { class: "muted small empty", text: t("no_members") }));
    list.replaceChildren(...rows);
  }

  const form = h(
    "form",
    {
      class: "share-form",
      onsubmit: async (e) => {
        e.preventDefault();
        const value = who.value.trim();
        if (!value) return;
        submit.disabled = true;
        try {
          await share({ ...(value.includes("@") ? { email: value } : { group: value }), role: role.value });
          who.value = "";
          toast(t("shared_with", { name: value }), "ok", 3000);
        } catch (err) {
          toast(err.message);
        } finally {
          submit.disabled = false;
          who.focus();
        }
      },
    },
    h("label", { class: "share-who" }, h("span", { text: t("share_who") }), who),
    h("label", { class: "share-role" }, h("span", { text: t("role") }), role),
    submit,
  );

  const dlg = h(
    "dialog",
    { class: "dialog share-dialog", "aria-labelledby": "share-title", "data-testid": "share-dialog" },
    h("div", { class: "dialog-head" }, h("h2", { id: "share-title", text: t("share_title") }), closeBtn),
    h("p", { class: "muted small", text: t("share_intro") }),
    form,
    h("h3", { text: t("members") }),
    list,
  );
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  renderMembers();
  dlg.showModal();
  who.focus();
  return {
    update(room) {
      if (!dlg.isConnected) return;
      current = { ...current, ...room };
      renderMembers();
    },
  };
}
