"""Kuwa's Modelfile: Ollama's Modelfile plus BEFORE-PROMPT and AFTER-PROMPT.

One command per line; command names are case-insensitive::

    FROM llama3                      # accepted and ignored (as are LICENSE and ADAPTER)
    SYSTEM You are a careful translator.
    PARAMETER temperature 0.2        # typed: int, float, true/false, else text
    PARAMETER stop "<|eot_id|>"      # stop may repeat; the values add up
    MESSAGE user "Translate: 你好"   # preset turns: system, user or assistant
    MESSAGE assistant Hello
    TEMPLATE \"\"\"{{ .System }} {{ .Prompt }}\"\"\"
    BEFORE-PROMPT \"\"\"Translate into English:
    \"\"\"
    AFTER-PROMPT " (answer in one line)"
    PASSAGES-TEMPLATE "Use these excerpts: {{ .Passages }} Question: {{ .Prompt }}"

A value is the bare rest of the line, a ``"double-quoted"`` text (``\\"`` and ``\\\\`` are its
only escapes) or a ``\"\"\"triple-quoted\"\"\"`` text that may span lines and is taken as
written, except that when the opening ``\"\"\"`` ends its line the text starts on the next one
(so the BEFORE-PROMPT above ends in a newline). ``#`` at the start of a line is a comment;
after a value, `` #`` starts a comment unless it is inside quotes. A quoted PARAMETER value is
always text.

``KUWAPARAM`` is the original Kuwa's other name for PARAMETER. As there, a repeated SYSTEM
adds a line to the system prompt, a MESSAGE system turn adds to it too, and repeated
BEFORE-/AFTER-PROMPT texts are joined; TEMPLATE and other PARAMETERs keep the last value.

``PASSAGES-TEMPLATE`` (Kuwa's own) shapes the last user message when the job carries passages
of the room's documents: ``{{ .Passages }}`` becomes the numbered passages, ``{{ .Prompt }}``
the message (after BEFORE-/AFTER-PROMPT). Only these two are replaced, once, as plain text:
nothing in a template, a passage or a prompt is ever evaluated. Without one, the default
template (:mod:`.passages`, in English or zh-TW) asks the model to answer from the passages
and cite ``[n]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from types import MappingProxyType

from kuwa.errors import InvalidRequestError
from kuwa.executors.passages import language_of, render_passages
from kuwa.schemas import GenerationParams, Message, Passage

ROLES = ("system", "user", "assistant")
_IGNORED = frozenset({"from", "license", "adapter"})
_COMMANDS = frozenset(
    {
        "system",
        "parameter",
        "kuwaparam",
        "message",
        "template",
        "before-prompt",
        "after-prompt",
        "passages-template",
    }
    | _IGNORED
)
_COMMAND_LIST = (
    "FROM, SYSTEM, PARAMETER, MESSAGE, TEMPLATE, BEFORE-PROMPT, AFTER-PROMPT, "
    "PASSAGES-TEMPLATE, LICENSE"
)
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_COMMENT = re.compile(r"(?:^|\s)#")
_WORD = re.compile(r"(\S+)\s*(.*)", re.DOTALL)


class ModelfileError(InvalidRequestError):
    """A Modelfile that cannot be read; ``line`` is where the problem is (1-based)."""

    code = "invalid_modelfile"

    def __init__(self, message: str, line: int | None = None, source: str | None = None) -> None:
        where = source or "Modelfile"
        text = f"{where} line {line}: {message}" if line is not None else f"{where}: {message}"
        super().__init__(text, param="modelfile")
        self.line = line
        self.reason = message


def _empty_params() -> Mapping[str, object]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Modelfile:
    system: str | None = None
    parameters: Mapping[str, object] = field(default_factory=_empty_params)
    messages: tuple[Message, ...] = ()
    template: str | None = None
    before_prompt: str | None = None
    after_prompt: str | None = None
    passages_template: str | None = None

    @classmethod
    def parse(cls, text: str) -> Modelfile:
        return _Parser(text).run()

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Modelfile:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ModelfileError(f"cannot read the file: {reason}", source=str(path)) from exc
        try:
            return cls.parse(text)
        except ModelfileError as exc:
            raise ModelfileError(exc.reason, exc.line, source=str(path)) from None

    def merge(self, other: Modelfile | None) -> Modelfile:
        """``other`` (a bot's Modelfile) applied on top of this one (the model's)."""
        if other is None:
            return self
        return Modelfile(
            system=other.system or self.system,
            parameters=MappingProxyType({**self.parameters, **other.parameters}),
            messages=self.messages + other.messages,
            template=other.template or self.template,
            before_prompt=other.before_prompt or self.before_prompt,
            after_prompt=other.after_prompt or self.after_prompt,
            passages_template=other.passages_template or self.passages_template,
        )

    def apply(
        self,
        messages: Sequence[Message],
        passages: Sequence[Passage] = (),
        language: str | None = None,
    ) -> tuple[Message, ...]:
        """The conversation as the model should see it.

        SYSTEM (plus any MESSAGE system turns) replaces a leading system message or is put
        first; preset turns follow it; BEFORE-/AFTER-PROMPT wrap the last user message, and
        with ``passages`` the PASSAGES-TEMPLATE (or the default one, in ``language`` or the
        message's) puts them around it.
        """
        convo = list(messages)
        if self.before_prompt or self.after_prompt or passages:
            for i in range(len(convo) - 1, -1, -1):
                if convo[i].role == "user":
                    content = (
                        f"{self.before_prompt or ''}{convo[i].content}{self.after_prompt or ''}"
                    )
                    if passages:
                        lang = language_of(language, convo[i].content)
                        content = render_passages(self.passages_template, content, passages, lang)
                    convo[i] = Message("user", content)
                    break
        parts = [self.system] if self.system else []
        parts += [m.content for m in self.messages if m.role == "system" and m.content]
        head: list[Message] = []
        if convo and convo[0].role == "system":
            leading = convo.pop(0)
            head = [Message("system", "\n".join(parts)) if parts else leading]
        elif parts:
            head = [Message("system", "\n".join(parts))]
        presets = [m for m in self.messages if m.role != "system"]
        return tuple(head + presets + convo)

    def generation_params(self, params: GenerationParams) -> GenerationParams:
        """PARAMETER values fill in what the request left unset; the request wins."""
        p = self.parameters
        temperature = params.temperature
        if temperature is None:
            temperature = _as_float(p.get("temperature"))
        top_p = params.top_p if params.top_p is not None else _as_float(p.get("top_p"))
        max_tokens = params.max_tokens
        if max_tokens is None:
            max_tokens = _as_int(p.get("max_tokens")) or _as_int(p.get("num_predict"))
            if max_tokens is not None and max_tokens <= 0:  # Ollama's -1: no limit
                max_tokens = None
        seed = params.seed if params.seed is not None else _as_int(p.get("seed"))
        stop = params.stop
        raw_stop = p.get("stop")
        if not stop and isinstance(raw_stop, tuple | list):
            stop = tuple(str(s) for s in raw_stop)

        def fill(name: str, *aliases: str) -> float | None:
            value = getattr(params, name)
            if value is not None:
                return float(value)
            for key in (name, *aliases):
                found = _as_float(p.get(key))
                if found is not None:
                    return found
            return None

        top_k = params.top_k if params.top_k is not None else _as_int(p.get("top_k"))
        return replace(
            params,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
            stop=stop,
            top_k=top_k,
            presence_penalty=fill("presence_penalty"),
            frequency_penalty=fill("frequency_penalty"),
            repetition_penalty=fill("repetition_penalty", "repeat_penalty"),
        )


def _as_float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _typed(raw: str) -> object:
    if _INT.fullmatch(raw):
        return int(raw)
    if _FLOAT.fullmatch(raw):
        return float(raw)
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw


class _Parser:
    def __init__(self, text: str) -> None:
        self.lines = [line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n")]
        self.i = 0  # index of the next line to read
        self.system: list[str] = []
        self.params: dict[str, object] = {}
        self.stop: list[str] = []
        self.messages: list[Message] = []
        self.template: str | None = None
        self.before: list[str] = []
        self.after: list[str] = []
        self.passages_template: str | None = None

    def run(self) -> Modelfile:
        while self.i < len(self.lines):
            lineno = self.i + 1
            line = self.lines[self.i].strip()
            self.i += 1
            if line and not line.startswith("#"):
                self.command(line, lineno)
        params = dict(self.params)
        if self.stop:
            params["stop"] = tuple(self.stop)
        return Modelfile(
            system="\n".join(self.system) if self.system else None,
            parameters=MappingProxyType(params),
            messages=tuple(self.messages),
            template=self.template,
            before_prompt="".join(self.before) if self.before else None,
            after_prompt="".join(self.after) if self.after else None,
            passages_template=self.passages_template,
        )

    def command(self, line: str, lineno: int) -> None:
        word, rest = _split(line)
        name = word.lower()
        if name not in _COMMANDS:
            raise ModelfileError(
                f"unknown command {word!r}; a line starts with one of {_COMMAND_LIST} or "
                "ADAPTER (a text that spans lines must be in triple quotes)",
                lineno,
            )
        what = word.upper()
        if name in ("parameter", "kuwaparam"):
            key, rest = _split(rest)
            if not key or key.startswith("#"):
                raise ModelfileError(
                    f"{what} needs a name and a value, like `PARAMETER temperature 0.7`", lineno
                )
            value, quoted = self.value(rest, lineno, f"{what} {key}")
            self.parameter(key.lower(), value, quoted, lineno)
        elif name == "message":
            role, rest = _split(rest)
            if not role or role.startswith("#"):
                raise ModelfileError(
                    "MESSAGE needs a role and a text, like `MESSAGE user Hi`", lineno
                )
            if role.lower() not in ROLES:
                raise ModelfileError(
                    f"MESSAGE role {role!r} is not one of system, user or assistant", lineno
                )
            value, _ = self.value(rest, lineno, f"MESSAGE {role}")
            self.messages.append(Message(role.lower(), value))
        else:
            value, _ = self.value(rest, lineno, what)
            if name == "system":
                self.system.append(value)
            elif name == "template":
                self.template = value
            elif name == "before-prompt":
                self.before.append(value)
            elif name == "after-prompt":
                self.after.append(value)
            elif name == "passages-template":
                self.passages_template = value

    def parameter(self, key: str, raw: str, quoted: bool, lineno: int) -> None:
        if key == "stop":
            if not raw:
                raise ModelfileError("PARAMETER stop needs a non-empty text", lineno)
            self.stop.append(raw)
            return
        value = raw if quoted else _typed(raw)
        if key in ("temperature", "top_p"):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ModelfileError(f"PARAMETER {key} must be a number, not {raw!r}", lineno)
            if value < 0 or (key == "top_p" and value > 1):
                bounds = "between 0 and 1" if key == "top_p" else "0 or more"
                raise ModelfileError(f"PARAMETER {key} must be {bounds}, not {raw}", lineno)
            value = float(value)
        elif key in ("max_tokens", "num_predict", "seed") and not isinstance(value, int):
            raise ModelfileError(f"PARAMETER {key} must be a whole number, not {raw!r}", lineno)
        elif key == "max_tokens" and isinstance(value, int) and value < 1:
            raise ModelfileError(f"PARAMETER max_tokens must be at least 1, not {raw}", lineno)
        self.params[key] = value

    def value(self, rest: str, lineno: int, what: str) -> tuple[str, bool]:
        """The value that starts with ``rest`` on line ``lineno``, and whether it was quoted."""
        if rest.startswith('"""'):
            return self.triple(rest[3:], lineno), True
        if rest.startswith('"'):
            out: list[str] = []
            k = 1
            while k < len(rest):
                c = rest[k]
                if c == "\\" and rest[k + 1 : k + 2] in ('"', "\\"):
                    out.append(rest[k + 1])
                    k += 2
                    continue
                if c == '"':
                    _after_quote(rest[k + 1 :], lineno)
                    return "".join(out), True
                out.append(c)
                k += 1
            raise ModelfileError(
                'the quoted text has no closing "; close it on the same line, or use """ '
                "for text that spans lines",
                lineno,
            )
        match = _COMMENT.search(rest)
        value = (rest[: match.start()] if match else rest).strip()
        if not value:
            raise ModelfileError(f"{what} needs a value", lineno)
        return value, False

    def triple(self, first: str, lineno: int) -> str:
        end = first.find('"""')
        if end >= 0:
            _after_quote(first[end + 3 :], lineno)
            return first[:end]
        parts = [first]
        while self.i < len(self.lines):
            line = self.lines[self.i]
            self.i += 1
            end = line.find('"""')
            if end >= 0:
                parts.append(line[:end])
                _after_quote(line[end + 3 :], self.i)
                if not parts[0].strip():
                    parts.pop(0)
                return "\n".join(parts)
            parts.append(line)
        raise ModelfileError(
            'the """ opened on this line is never closed; end the text with """', lineno
        )


def _split(text: str) -> tuple[str, str]:
    match = _WORD.match(text)
    return (match.group(1), match.group(2)) if match else ("", "")


def _after_quote(rest: str, lineno: int) -> None:
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise ModelfileError(
            f"unexpected text {rest!r} after the closing quote; put a comment after `#`", lineno
        )
