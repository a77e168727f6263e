// A model's settings in a room (the owner's gear on its column): a system prompt,
// temperature, top-p and the most tokens to generate, as Open WebUI has them. Saved with the
// room (POST /app/rooms/{id} {"model_settings"}); the server keeps them within the group's
// bounds (room.bounds), which the fields show. Empty fields use the model's defaults.
import { api } from "./api.js";
import { h, iconButton, toast } from "./dom.js";
import { t } from "./i18n.js";

const NUMBERS = [
  // name, label key, lowest, highest, step
  ["temperature", "ms_temperature", 0, 2, 0.05],
  ["top_p", "ms_top_p", 0.01, 1, 0.01],
  ["max_tokens", "ms_max_tokens", 1, 1_000_000, 1],
];

export function hasSettings(room, code) {
  return Object.keys(room?.model_settings?.[code] || {}).length > 0;
}

/** Open the dialog for `code`'s settings in the room `view` shows. */
export function openModelSettings(view, code) {
  const room = view.room;
  const model = view.model(code);
  const current = room.model_settings?.[code] || {};
  const bounds = room.bounds || {};
  const error = h("p", { class: "field-error", role: "alert", "data-testid": "ms-error", hidden: true });
  const system = h("textarea", {
    id: "ms-system",
    rows: 5,
    value: current.system || "",
    placeholder: t("ms_system_placeholder"),
    "data-testid": "ms-system",
  });
  const inputs = {};
  const numberField = ([name, label, low, high, step]) => {
    const top = bounds[name] ?? high;
    const input = h("input", {
      id: `ms-${name}`,
      type: "number",
      min: String(low),
      max: String(top),
      step: String(step),
      inputmode: step === 1 ? "numeric" : "decimal",
      value: current[name] ?? "",
      placeholder: t("ms_default"),
      "data-testid": `ms-${name}`,
      "aria-describedby": `ms-${name}-hint`,
    });
    inputs[name] = input;
    const hint = bounds[name] != null ? t("ms_group_max", { max: bounds[name] }) : t("ms_range", { low, high });
    return h(
      "div",
      { class: "field" },
      h("label", { for: `ms-${name}`, text: t(label) }),
      input,
      h("span", { id: `ms-${name}-hint`, class: "muted small", text: hint }),
    );
  };
  const save = h("button", { type: "submit", "data-testid": "ms-save", text: t("save") });
  const reset = h("button", {
    type: "button",
    class: "secondary",
    "data-testid": "ms-reset",
    text: t("ms_reset"),
    onclick: () => {
      system.value = "";
      for (const input of Object.values(inputs)) input.value = "";
    },
  });
  const form = h(
    "form",
    {
      class: "bot-form",
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        error.hidden = true;
        const mine = {};
        if (system.value.trim()) mine.system = system.value;
        for (const [name] of NUMBERS) {
          const raw = inputs[name].value.trim();
          if (raw === "") continue;
          const value = Number(raw);
          if (!Number.isFinite(value)) {
            error.textContent = t("ms_not_number", { name: t(`ms_${name}`) });
            error.hidden = false;
            inputs[name].focus();
            return;
          }
          mine[name] = value;
        }
        const all = { ...(room.model_settings || {}) };
        if (Object.keys(mine).length) all[code] = mine;
        else delete all[code];
        save.disabled = true;
        try {
          const updated = await api.post(`/app/rooms/${room.id}`, { model_settings: all });
          view.onRoom(updated);
          dlg.close();
          toast(t("ms_saved", { name: model.name }), "ok", 3000);
        } catch (err) {
          error.textContent = err.message || String(err);
          error.hidden = false;
        } finally {
          save.disabled = false;
        }
      },
    },
    h("div", { class: "field" }, h("label", { for: "ms-system", text: t("ms_system") }), system),
    h("div", { class: "field-row ms-numbers" }, NUMBERS.map(numberField)),
    error,
    h("div", { class: "dialog-actions" }, reset, save),
  );
  const dlg = h(
    "dialog",
    { class: "dialog bot-editor ms-dialog", "aria-labelledby": "ms-title", "data-testid": "model-settings" },
    h(
      "div",
      { class: "dialog-head" },
      h("h2", { id: "ms-title", text: t("ms_title", { name: model.name }) }),
      iconButton("close", t("close"), { class: "icon-btn", onclick: () => dlg.close() }),
    ),
    h("p", { class: "muted small", text: t("ms_intro") }),
    form,
  );
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  system.focus();
}
