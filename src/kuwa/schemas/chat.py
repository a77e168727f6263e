"""Chat request validation for the OpenAI-style and the Kuwa v1.0 endpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ROLES = frozenset({"system", "user", "assistant"})
OPTIONAL_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "top_k",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
)
ROLE_ALIASES = {"developer": "system"}
MAX_STOP = 4
MAX_FILES = 20


class SchemaError(ValueError):
    """The request does not match the schema; ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class Passage:
    """A passage of a document the model answers from, cited as ``[n]``; ``source`` is the
    document's name, ``page`` its 1-based page (None for formats without pages)."""

    n: int
    source: str
    page: int | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "source": self.source, "page": self.page, "text": self.text}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Passage:
        page = data.get("page")
        return cls(
            int(data["n"]),
            str(data.get("source") or ""),
            int(page) if page is not None else None,
            str(data.get("text") or ""),
        )


@dataclass(frozen=True, slots=True)
class GenerationParams:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False
    top_k: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in OPTIONAL_PARAMS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.stop:
            out["stop"] = list(self.stop)
        if self.ignore_eos:
            out["ignore_eos"] = True
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationParams:
        return cls(
            temperature=data.get("temperature"),
            top_p=data.get("top_p"),
            max_tokens=data.get("max_tokens"),
            stop=tuple(data.get("stop", ())),
            seed=data.get("seed"),
            ignore_eos=bool(data.get("ignore_eos", False)),
            top_k=data.get("top_k"),
            presence_penalty=data.get("presence_penalty"),
            frequency_penalty=data.get("frequency_penalty"),
            repetition_penalty=data.get("repetition_penalty"),
        )


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    stream: bool = True
    include_usage: bool = False
    user: str | None = None
    files: tuple[str, ...] = ()  # documents to answer from (ids of POST /v1/files)
    passages: tuple[Passage, ...] = ()  # their passages ranked for this prompt
    language: str | None = None  # of the person asking (BCP 47), for the passages' template


Dialect = Literal["openai", "kuwa"]


def parse_chat_request(body: Any, dialect: Dialect) -> ChatRequest:
    """Validate a decoded JSON body. Unknown fields are ignored.

    ``openai``: ``stream`` defaults to false and content may be a list of text parts.
    ``kuwa`` (the v1.0 API): ``stream`` defaults to true and content must be a string.
    """
    if not isinstance(body, dict):
        raise SchemaError("The request body must be a JSON object.")
    model = body.get("model")
    if model is None or model == "":
        raise SchemaError("'model' is required: the access code of the model to use.", "model")
    if not isinstance(model, str):
        raise SchemaError("'model' must be a string.", "model")
    files: list[str] = []
    messages = _messages(body.get("messages"), allow_parts=dialect == "openai", files=files)
    stream = body.get("stream", dialect == "kuwa")
    if stream is None:
        stream = dialect == "kuwa"
    if not isinstance(stream, bool):
        raise SchemaError("'stream' must be true or false.", "stream")
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise SchemaError("'stream_options' must be an object.", "stream_options")
        include_usage = options.get("include_usage", False) is True
    n = body.get("n")
    if n is not None and (n != 1 or isinstance(n, bool)):
        raise SchemaError("Only n=1 is supported.", "n")
    user = body.get("user")
    extra = body.get("files")
    if extra is not None:
        if not isinstance(extra, list) or not all(isinstance(f, str) and f for f in extra):
            raise SchemaError("'files' must be a list of file ids (from POST /v1/files).", "files")
        files += extra
    files = list(dict.fromkeys(files))
    if len(files) > MAX_FILES:
        raise SchemaError(f"A request may name at most {MAX_FILES} files.", "files")
    return ChatRequest(
        model=model,
        messages=messages,
        params=_params(body),
        stream=stream,
        include_usage=include_usage,
        user=user if isinstance(user, str) else None,
        files=tuple(files),
    )


def _messages(raw: Any, *, allow_parts: bool, files: list[str]) -> tuple[Message, ...]:
    if raw is None:
        raise SchemaError("'messages' is required: a non-empty list of messages.", "messages")
    if not isinstance(raw, list):
        raise SchemaError("'messages' must be a list of messages.", "messages")
    if not raw:
        raise SchemaError("'messages' must contain at least one message.", "messages")
    out = []
    for i, item in enumerate(raw):
        param = f"messages[{i}]"
        if not isinstance(item, dict):
            raise SchemaError(
                f"In {param}: a message must be an object with 'role' and 'content'.", param
            )
        role = item.get("role")
        if not isinstance(role, str):
            raise SchemaError(f"In {param}: 'role' must be a string.", f"{param}.role")
        role = ROLE_ALIASES.get(role, role)
        if role not in ROLES:
            raise SchemaError(
                f"In {param}: the role {role!r} is not supported; use system, user or assistant.",
                f"{param}.role",
            )
        content = _content(item.get("content"), f"{param}.content", allow_parts, files)
        out.append(Message(role, content))
    return tuple(out)


def _content(raw: Any, param: str, allow_parts: bool, files: list[str]) -> str:
    if isinstance(raw, str):
        return raw
    if raw is None:
        raise SchemaError(f"In {param}: 'content' is required and must be a string.", param)
    if allow_parts and isinstance(raw, list):
        texts = []
        for j, part in enumerate(raw):
            if isinstance(part, dict) and part.get("type") == "file":
                ref = part.get("file")
                file_id = ref.get("file_id") if isinstance(ref, dict) else None
                if not isinstance(file_id, str) or not file_id:
                    raise SchemaError(
                        f"In {param}[{j}]: a file part needs file.file_id (from POST /v1/files).",
                        f"{param}[{j}].file.file_id",
                    )
                files.append(file_id)
                continue
            if not isinstance(part, dict) or part.get("type") != "text":
                raise SchemaError(
                    f"In {param}[{j}]: only text and file parts are supported.",
                    f"{param}[{j}]",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise SchemaError(
                    f"In {param}[{j}]: 'text' must be a string.", f"{param}[{j}].text"
                )
            texts.append(text)
        return "".join(texts)
    raise SchemaError(f"In {param}: 'content' must be a string.", param)


def _number(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchemaError(f"'{name}' must be a number.", name)
    if not lo <= value <= hi:
        raise SchemaError(f"'{name}' must be between {lo:g} and {hi:g}.", name)
    return float(value)


def _int(body: dict[str, Any], name: str, lo: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(f"'{name}' must be an integer.", name)
    if value < lo:
        raise SchemaError(f"'{name}' must be at least {lo}.", name)
    return value


def _params(body: dict[str, Any]) -> GenerationParams:
    temperature = _number(body, "temperature", 0.0, 2.0)
    top_p = _number(body, "top_p", 0.0, 1.0)
    max_tokens = _int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 1)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise SchemaError("'seed' must be an integer.", "seed")
    raw_stop = body.get("stop")
    stop: tuple[str, ...] = ()
    if isinstance(raw_stop, str):
        stop = (raw_stop,) if raw_stop else ()
    elif isinstance(raw_stop, list):
        if len(raw_stop) > MAX_STOP or not all(isinstance(s, str) and s for s in raw_stop):
            raise SchemaError(
                f"'stop' must be a string or a list of at most {MAX_STOP} non-empty strings.",
                "stop",
            )
        stop = tuple(raw_stop)
    elif raw_stop is not None:
        raise SchemaError("'stop' must be a string or a list of strings.", "stop")
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise SchemaError("'ignore_eos' must be true or false.", "ignore_eos")
    top_k = None if body.get("top_k") == -1 else _int(body, "top_k", 1)  # -1: vLLM's "no limit"
    return GenerationParams(
        temperature,
        top_p,
        max_tokens,
        stop,
        seed,
        ignore_eos,
        top_k=top_k,
        presence_penalty=_number(body, "presence_penalty", -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", -2.0, 2.0),
        repetition_penalty=_number(body, "repetition_penalty", 0.01, 10.0),
    )
