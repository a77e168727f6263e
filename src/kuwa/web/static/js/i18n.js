// UI strings: /static/i18n/{lang}.json, English as the fallback for a missing key.
export const LANGS = [
  ["en", "English"],
  ["zh-TW", "繁體中文"],
];

let strings = {};
let fallback = {};
let current = "en";

async function fetchStrings(lang) {
  const r = await fetch(`/static/i18n/${lang}.json`, { credentials: "same-origin" });
  if (!r.ok) throw new Error(`i18n ${lang}: ${r.status}`);
  return r.json();
}

export async function loadStrings(lang) {
  current = LANGS.some(([code]) => code === lang) ? lang : "en";
  try {
    fallback = await fetchStrings("en");
  } catch {
    fallback = {};
  }
  strings = current === "en" ? fallback : await fetchStrings(current).catch(() => fallback);
  document.documentElement.lang = current;
}

export function lang() {
  return current;
}

const pluralRules = {};

/** The CLDR plural category of n in language code: "one" or "other" for English, always
 *  "other" for Chinese. */
function pluralOf(code, n) {
  pluralRules[code] ??= new Intl.PluralRules(code);
  return pluralRules[code].select(n);
}

/** KEY_one, KEY_other… for a count {n} when the catalog has that form, else KEY. */
function pick(table, code, key, vars) {
  if (vars && typeof vars.n === "number") {
    const form = table[`${key}_${pluralOf(code, vars.n)}`];
    if (form !== undefined) return form;
  }
  return table[key];
}

/** t("sent_to", {name: "Echo"}) → the string with {name} filled in; with a count {n}, the
 *  catalog's plural form for it (uses_count_one: "{n} use", uses_count: "{n} uses"). */
export function t(key, vars) {
  let text = pick(strings, current, key, vars) ?? pick(fallback, "en", key, vars) ?? key;
  if (vars) {
    text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
  }
  return text;
}

/** Store the choice where the server reads it (cookie kuwa_lang) and reload. */
export function chooseLang(code) {
  const secure = location.protocol === "https:" ? "; secure" : "";
  document.cookie = `kuwa_lang=${encodeURIComponent(code)}; path=/; max-age=31536000; samesite=lax${secure}`;
  location.reload();
}
