// Pure functions over a room's messages (no DOM): the shown thread, versions, branches and
// the quoting rule. Messages are the API's Message objects.

const byId = (a, b) => a.id - b.id;

function live(messages) {
  return [...messages].filter((m) => !m.deleted);
}

/** Prompts with this parent (null: the first prompts), oldest first. */
export function branchesOf(messages, parent) {
  return live(messages)
    .filter((m) => m.role === "user" && (m.parent ?? null) === (parent ?? null))
    .sort(byId);
}

function pick(list) {
  if (!list.length) return null;
  return list.find((m) => m.selected) || list[list.length - 1];
}

/**
 * The thread shown: from the selected first prompt, follow the selected prompt whose parent is
 * the previous one. Returns [{prompt, branches, answers: Map(model → {shown, versions})}].
 */
export function thread(messages) {
  const all = live(messages);
  const prompts = all.filter((m) => m.role === "user");
  const answers = all.filter((m) => m.role === "assistant");
  const childPrompts = new Map();
  for (const p of prompts) {
    const key = p.parent ?? null;
    if (!childPrompts.has(key)) childPrompts.set(key, []);
    childPrompts.get(key).push(p);
  }
  const answersOf = new Map();
  for (const a of answers) {
    if (!answersOf.has(a.parent)) answersOf.set(a.parent, []);
    answersOf.get(a.parent).push(a);
  }
  const turns = [];
  const seen = new Set();
  let parent = null;
  for (;;) {
    const branches = (childPrompts.get(parent) || []).sort(byId);
    const prompt = pick(branches);
    if (!prompt || seen.has(prompt.id)) break;
    seen.add(prompt.id);
    const perModel = new Map();
    for (const a of (answersOf.get(prompt.id) || []).sort(byId)) {
      if (!perModel.has(a.model)) perModel.set(a.model, []);
      perModel.get(a.model).push(a);
    }
    const byModel = new Map();
    for (const [model, versions] of perModel) byModel.set(model, { shown: pick(versions), versions });
    turns.push({ prompt, branches, answers: byModel });
    parent = prompt.id;
  }
  return turns;
}

/** Versions of an answer: the same model's answers to the same prompt. */
export function versionsOf(messages, answer) {
  return live(messages)
    .filter((m) => m.role === "assistant" && m.parent === answer.parent && m.model === answer.model)
    .sort(byId);
}

/** Mark `msg` selected and its siblings not (what the server does on select/regenerate/edit). */
export function applySelected(map, msg) {
  if (!msg.selected) return;
  for (const other of map.values()) {
    if (other.id === msg.id || other.role !== msg.role) continue;
    if ((other.parent ?? null) !== (msg.parent ?? null)) continue;
    if (msg.role === "assistant" && other.model !== msg.model) continue;
    other.selected = false;
  }
}

/**
 * Kuwa's quoting rule: the prompt followed by each quote as a """…""" block; each block is
 * headed by "Model name:" when the quotes come from more than one model. An empty prompt with
 * exactly one quote sends the quote itself.
 * quotes: [{model, name, text}]
 */
export function composeQuoted(prompt, quotes) {
  const text = prompt.trim() ? prompt : "";
  if (!quotes.length) return text;
  if (!text && quotes.length === 1) return quotes[0].text;
  const several = new Set(quotes.map((q) => q.model)).size > 1;
  const blocks = quotes.map((q) => (several ? `${q.name}:\n` : "") + `"""${q.text}"""`);
  return [text, ...blocks].filter(Boolean).join("\n");
}
