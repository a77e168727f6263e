"""Rule-based control of what goes into a model and what comes out of it.

Rules come from a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file given with ``--rules``:
input rules (block, warn or overwrite the user's messages), output rules (the same on the
streamed answer), parameter bounds and ``max_input_tokens`` (history trimming). The format,
with an example in both languages, is documented in ``docs/rules.md``; a test loads its
examples, so the page and this parser cannot disagree.

Matching is case-insensitive unless ``case_sensitive: true``. A keyword's ``replace`` is taken
literally; a regex's may name groups (``\\1``, ``\\g<name>``). Rules run in file order; an
overwrite changes the text later rules see. The output filter holds back the last few
characters of the stream (a keyword's length less one; a regex's ``window`` less one) so a
match split across chunks is still caught: a blocked phrase never reaches the client. Every
decision is counted in :meth:`Rules.counters`. Nothing here logs or keeps the users' text.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import yaml

from kuwa.errors import ConfigError
from kuwa.schemas import GenerationParams, Message

Action = Literal["block", "warn", "overwrite"]
ACTIONS = ("block", "warn", "overwrite")
DEFAULT_WINDOW = 64
BOUNDED = ("temperature", "top_p", "max_tokens")
COUNTERS = tuple(
    [f"{side}.{action}" for side in ("input", "output") for action in ACTIONS]
    + ["input.trimmed", "parameters.clamped", "parameters.defaulted"]
)
_DEFAULT_MESSAGES = {
    ("input", "block"): "Your message was blocked by a content rule.",
    ("input", "warn"): "Your message matched a content rule.",
    ("output", "block"): "The answer was stopped by a content rule.",
    ("output", "warn"): "The answer matched a content rule.",
}


class RulesError(ConfigError):
    """A rules file that cannot be used; the message names the file and the rule."""

    code = "invalid_rules"


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: re.Pattern[str]
    action: Action
    message: str
    replace: str = ""
    scope: Literal["last", "all"] = "last"
    hold: int = 0  # characters of a stream to hold back: the longest match less one
    keyword: bool = False


@dataclass(frozen=True, slots=True)
class Bound:
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class InputDecision:
    messages: tuple[Message, ...]
    blocked: str | None = None
    warnings: list[str] = field(default_factory=list)


class Rules:
    def __init__(
        self,
        input: Sequence[Rule] = (),
        output: Sequence[Rule] = (),
        parameters: Mapping[str, Bound] | None = None,
        max_input_tokens: int | None = None,
    ) -> None:
        self.input = tuple(input)
        self.output = tuple(output)
        self.parameters = dict(parameters or {})
        self.max_input_tokens = max_input_tokens
        self._counts: Counter[str] = Counter()

    @classmethod
    def empty(cls) -> Rules:
        return cls()

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Rules:
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix not in (".yaml", ".yml", ".toml"):
            raise RulesError(f"{p}: a rules file must end in .yaml, .yml or .toml")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise RulesError(f"{p}: cannot read the file: {reason}") from exc
        try:
            data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            raise RulesError(f"{p}: not valid {suffix[1:].upper()}: {exc}") from None
        try:
            return cls.from_dict({} if data is None else data)
        except RulesError as exc:
            raise RulesError(f"{p}: {exc.message}") from None

    @classmethod
    def from_dict(cls, data: Any) -> Rules:
        if not isinstance(data, Mapping):
            raise RulesError("the rules must be a mapping with input, output, parameters ...")
        _no_unknown(data, {"input", "output", "parameters", "max_input_tokens"}, "the rules")
        limit = data.get("max_input_tokens")
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise RulesError("max_input_tokens must be a whole number of at least 1")
        return cls(
            input=_rules(data.get("input"), "input"),
            output=_rules(data.get("output"), "output"),
            parameters=_bounds(data.get("parameters")),
            max_input_tokens=limit,
        )

    def counters(self) -> dict[str, int]:
        return {name: self._counts[name] for name in COUNTERS}

    def count(self, name: str, n: int = 1) -> None:
        if n:
            self._counts[name] += n

    def check_input(self, messages: Sequence[Message]) -> InputDecision:
        """Apply the input rules to the user's messages (see the module docstring)."""
        msgs = list(messages)
        users = [i for i, m in enumerate(msgs) if m.role == "user"]
        warnings: list[str] = []
        for rule in self.input:
            for i in users if rule.scope == "all" else users[-1:]:
                content = msgs[i].content
                if rule.action == "overwrite":
                    new, n = rule.pattern.subn(rule.replace, content)
                    if n:
                        msgs[i] = Message(msgs[i].role, new)
                        self.count("input.overwrite", n)
                elif _search(rule.pattern, content) is not None:
                    if rule.action == "block":
                        self.count("input.block")
                        return InputDecision(tuple(msgs), rule.message, warnings)
                    self.count("input.warn")
                    warnings.append(rule.message)
                    break  # once per rule
        return InputDecision(tuple(msgs), None, warnings)

    def bound(self, params: GenerationParams) -> GenerationParams:
        """Clamp the request's parameters into bounds; an unset max_tokens gets the max."""
        changes: dict[str, Any] = {}
        for name, b in self.parameters.items():
            value = getattr(params, name)
            if value is None:
                if name == "max_tokens" and b.max is not None:
                    changes[name] = int(b.max)
                    self.count("parameters.defaulted")
                continue
            clamped = value
            if b.min is not None and clamped < b.min:
                clamped = b.min
            if b.max is not None and clamped > b.max:
                clamped = b.max
            if clamped != value:
                changes[name] = int(clamped) if name == "max_tokens" else float(clamped)
                self.count("parameters.clamped")
        return replace(params, **changes) if changes else params

    def trim(
        self, messages: Sequence[Message], count_tokens: Callable[[Sequence[Message]], int]
    ) -> tuple[Message, ...]:
        """Drop the oldest turns until ``count_tokens`` is within max_input_tokens.

        System messages and the last message are never dropped; a history left starting with
        an assistant turn loses that turn too, so it starts with the user.
        """
        kept = list(messages)
        if self.max_input_tokens is None:
            return tuple(kept)
        dropped = False
        while count_tokens(kept) > self.max_input_tokens:
            droppable = [i for i, m in enumerate(kept[:-1]) if m.role != "system"]
            if not droppable:
                break
            first = droppable[0]
            del kept[first]
            while first < len(kept) - 1 and kept[first].role == "assistant":
                del kept[first]
            dropped = True
        if dropped:
            self.count("input.trimmed")
        return tuple(kept)

    def output_filter(self) -> OutputFilter:
        return OutputFilter(self)


class OutputFilter:
    """Applies the output rules to one streamed answer. Feed it text; emit what it returns."""

    def __init__(self, rules: Rules) -> None:
        self._rules = rules
        self._active = list(rules.output)
        self._hold = max((r.hold for r in self._active), default=0)
        self._pending = ""
        self._done = False
        self.blocked: str | None = None
        self.warnings: list[str] = []

    def feed(self, text: str) -> str:
        """The text that is safe to emit now."""
        if self._done:
            return ""
        self._pending += text
        return self._process(final=False)

    def finish(self) -> str:
        """The rest of the text, after a last check. The stream is over after this."""
        if self._done:
            return ""
        out = self._process(final=True)
        self._done = True
        return out

    def _process(self, *, final: bool) -> str:
        out: list[str] = []
        while True:
            pending = self._pending
            safe = len(pending) if final else len(pending) - self._hold
            found = [
                (m.start(), r.action != "block", k, m, r)
                for k, r in enumerate(self._active)
                if (m := _search(r.pattern, pending)) is not None
            ]
            if not found:
                cut = max(safe, 0)
                break
            start, _, k, m, rule = min(found, key=lambda f: f[:3])
            # A regex match touching the end may still grow (up to its window); an overwrite
            # waits until no other rule could still match earlier, or it might cut that match.
            grown = rule.keyword or m.end() < len(pending) or m.end() - start > rule.hold
            early = start < safe or rule.action != "overwrite"
            if not (final or (grown and early)):
                cut = max(min(start, safe), 0)
                break
            if rule.action == "block":
                out.append(pending[:start])
                self.blocked = rule.message
                self._rules.count("output.block")
                self._pending = ""
                self._done = True
                return "".join(out)
            if rule.action == "warn":
                del self._active[k]  # once per answer
                self.warnings.append(rule.message)
                self._rules.count("output.warn")
                continue
            out.append(pending[:start] + m.expand(rule.replace))
            self._pending = pending[m.end() :]
            self._rules.count("output.overwrite")
        out.append(self._pending[:cut])
        self._pending = self._pending[cut:]
        return "".join(out)


def _search(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The first match that is not empty."""
    for m in pattern.finditer(text):
        if m.end() > m.start():
            return m
    return None


def _no_unknown(data: Mapping[Any, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise RulesError(
            f"{where}: unknown key {unknown[0]!r}; expected {', '.join(sorted(allowed))}"
        )


def _rules(raw: Any, section: Literal["input", "output"]) -> list[Rule]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RulesError(f"{section} must be a list of rules")
    return [_rule(item, section, f"{section} rule {n}") for n, item in enumerate(raw, 1)]


def _rule(raw: Any, section: Literal["input", "output"], where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise RulesError(f"{where}: a rule must be a mapping with match and action")
    allowed = {"match", "action", "message", "replace"}
    allowed |= {"scope"} if section == "input" else {"window"}
    _no_unknown(raw, allowed, where)
    action = raw.get("action")
    if action not in ACTIONS:
        raise RulesError(f"{where}: action must be block, warn or overwrite, not {action!r}")
    match = raw.get("match")
    if not isinstance(match, Mapping) or len({"keyword", "regex"} & set(match)) != 1:
        raise RulesError(f"{where}: match must be {{keyword: ...}} or {{regex: ...}}")
    _no_unknown(match, {"keyword", "regex", "case_sensitive"}, f"{where}: match")
    case_sensitive = match.get("case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        raise RulesError(f"{where}: case_sensitive must be true or false")
    flags = 0 if case_sensitive else re.IGNORECASE
    keyword = "keyword" in match
    text = match.get("keyword", match.get("regex"))
    if not isinstance(text, str) or not text:
        raise RulesError(
            f"{where}: the {'keyword' if keyword else 'regex'} must be a non-empty text"
        )
    try:
        pattern = re.compile(re.escape(text) if keyword else text, flags)
    except re.error as exc:
        raise RulesError(f"{where}: invalid regex {text!r}: {exc}") from None
    window = raw.get("window", len(text) if keyword else DEFAULT_WINDOW)
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise RulesError(f"{where}: window must be a whole number of characters, at least 1")
    if keyword and "window" in raw:
        raise RulesError(f"{where}: window applies to regex rules only")
    message = raw.get("message", _DEFAULT_MESSAGES.get((section, action), ""))
    if not isinstance(message, str):
        raise RulesError(f"{where}: message must be a text")
    if action == "overwrite" and not isinstance(raw.get("replace"), str):
        raise RulesError(f'{where}: overwrite needs replace: the text to put in ("" deletes)')
    if action != "overwrite" and "replace" in raw:
        raise RulesError(f"{where}: replace applies to overwrite rules only")
    repl = raw.get("replace", "")
    if keyword:  # a keyword's replacement is taken literally
        repl = repl.replace("\\", "\\\\")
    try:
        pattern.sub(repl, "")  # a bad group reference fails here, not mid-stream
    except (re.error, IndexError) as exc:
        raise RulesError(f"{where}: invalid replace {raw.get('replace')!r}: {exc}") from None
    scope = raw.get("scope", "last")
    if scope not in ("last", "all"):
        raise RulesError(f"{where}: scope must be last or all, not {scope!r}")
    return Rule(pattern, action, message, repl, scope, window - 1, keyword)


def _bounds(raw: Any) -> dict[str, Bound]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise RulesError("parameters must be a mapping like {max_tokens: {max: 2048}}")
    _no_unknown(raw, set(BOUNDED), "parameters")
    out: dict[str, Bound] = {}
    for name, spec in raw.items():
        where = f"parameters.{name}"
        if not isinstance(spec, Mapping) or not spec:
            raise RulesError(f"{where} must be a mapping like {{min: 0, max: 1}}")
        _no_unknown(spec, {"min", "max"}, where)
        values: dict[str, float | None] = {}
        for key in ("min", "max"):
            v = spec.get(key)
            if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
                raise RulesError(f"{where}.{key} must be a number")
            if name == "max_tokens" and v is not None and (not isinstance(v, int) or v < 1):
                raise RulesError(f"{where}.{key} must be a whole number of at least 1")
            values[key] = v
        lo, hi = values["min"], values["max"]
        if lo is not None and hi is not None and lo > hi:
            raise RulesError(f"{where}: min {lo} is more than max {hi}")
        out[name] = Bound(lo, hi)
    return out
