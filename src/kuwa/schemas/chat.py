"""Chat requests of the OpenAI-style and the Kuwa v1.0 endpoints: the wire bodies as typed
structs (validation and the OpenAPI document both come from them), and the request they
become (:class:`ChatRequest`, what the gateway, the web app and the executors work with)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from kuwa.schemas.decode import SchemaError, convert, whole_numbers

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


# --- the wire bodies --------------------------------------------------------------------------
Dialect = Literal["openai", "kuwa"]
NonEmpty = Annotated[str, Meta(min_length=1)]
Role = Annotated[
    Literal["assistant", "developer", "system", "user"],
    Meta(description=", ".join(f"`{a}` is read as `{r}`" for a, r in ROLE_ALIASES.items())),
]


class TextPart(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class FileRef(msgspec.Struct):
    file_id: NonEmpty


class FilePart(msgspec.Struct, tag_field="type", tag="file", kw_only=True):
    """A document to answer from (an id from POST /v1/files)."""

    file: FileRef


class ChatMessage(msgspec.Struct):
    """A message of the conversation, oldest first."""

    role: Role
    content: Annotated[
        str | list[TextPart | FilePart],
        Meta(
            description="A string, or text parts (joined) and file parts (documents to "
            "answer from)."
        ),
    ]


class KuwaMessage(msgspec.Struct):
    """A message of the conversation, oldest first."""

    role: Role
    content: str


class StreamOptions(msgspec.Struct):
    include_usage: Annotated[
        bool, Meta(description="One more chunk with `choices: []` and the usage.")
    ] = False


Temperature = Annotated[
    Annotated[float, Meta(ge=0, le=2)] | None,
    Meta(description="Sampling temperature, passed to the backend."),
]
TopP = Annotated[
    Annotated[float, Meta(ge=0, le=1)] | None,
    Meta(description="Nucleus sampling, passed to the backend."),
]
Penalty = Annotated[
    Annotated[float, Meta(ge=-2, le=2)] | None, Meta(description="vLLM and openai backends.")
]
RepetitionPenalty = Annotated[
    Annotated[float, Meta(ge=0.01, le=10)] | None,
    Meta(description="vLLM and transformers backends."),
]
MaxTokens = Annotated[
    Annotated[int, Meta(ge=1)] | None,
    Meta(
        description="Most tokens to generate (`max_completion_tokens` wins); the answer then "
        'ends with `finish_reason: "length"`.'
    ),
]
MaxCompletionTokens = Annotated[
    Annotated[int, Meta(ge=1)] | None,
    Meta(description="Most tokens to generate; wins over `max_tokens`."),
]
TopK = Annotated[
    Annotated[int, Meta(ge=-1, extra_json_schema={"not": {"const": 0}})] | None,
    Meta(description="vLLM and transformers backends; -1: no limit (0 is refused)."),
]
Stop = Annotated[
    str | Annotated[list[NonEmpty], Meta(max_length=MAX_STOP)] | None,
    Meta(description="The answer stops before the first match."),
]
Seed = Annotated[int | None, Meta(description="Passed to the backend; from -2^63 to 2^64-1.")]
IgnoreEos = Annotated[
    bool, Meta(description="vLLM extension: keep generating past end-of-sequence.")
]


class _ChatBody(msgspec.Struct, kw_only=True):
    """The fields both dialects read. Unknown fields (`tools`, `response_format`, …) are
    ignored."""

    model: Annotated[NonEmpty, Meta(description="The model's access code.")]
    files: Annotated[
        Annotated[list[NonEmpty], Meta(max_length=MAX_FILES)] | None,
        Meta(
            description="Kuwa: ids of files (POST /v1/files) to answer from; their best "
            "passages for the last user message go into the prompt."
        ),
    ] = None
    # the generation parameters, one per GenerationParams field
    temperature: Temperature = None
    top_p: TopP = None
    max_tokens: MaxTokens = None
    stop: Stop = None
    seed: Seed = None
    ignore_eos: IgnoreEos = False
    top_k: TopK = None
    presence_penalty: Penalty = None
    frequency_penalty: Penalty = None
    repetition_penalty: RepetitionPenalty = None
    # read, but not parameters of the generation
    max_completion_tokens: MaxCompletionTokens = None
    n: Annotated[Literal[1] | None, Meta(description="Only 1 is supported.")] = None
    user: Annotated[str | None, Meta(description="Accepted, not used yet.")] = None


class ChatCompletionRequest(_ChatBody, kw_only=True):
    """``POST /v1/chat/completions``. Unknown fields (`tools`, `response_format`, …) are
    ignored."""

    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    stream: Annotated[bool | None, Meta(description="Answer as server-sent events.")] = False
    stream_options: StreamOptions | None = None


class KuwaChatRequest(_ChatBody, kw_only=True):
    """``POST /v1.0/chat/completions`` (Multi-Chat 1.0): content is a string and ``stream``
    defaults to true. Unknown fields are ignored."""

    messages: Annotated[list[KuwaMessage], Meta(min_length=1)]
    stream: Annotated[bool | None, Meta(description="Answer as server-sent events.")] = True


BODIES: dict[str, type[ChatCompletionRequest] | type[KuwaChatRequest]] = {
    "openai": ChatCompletionRequest,
    "kuwa": KuwaChatRequest,
}
# Better sentences than the generic ones for the fields clients get wrong most.
MESSAGES = {
    "model": "'model' is required: the access code of the model to use (a non-empty string).",
    "messages": "'messages' must be a non-empty list of messages.",
    "messages[]": "In {param}: a message must be an object with 'role' and 'content'.",
    "messages[].role": "In {param}: the role must be system, user or assistant.",
    "messages[].content": "In {param}: 'content' is required and must be a string.",
    "messages[].content[]": "In {param}: only text and file parts are supported.",
    "messages[].content[].file.file_id": "In {param}: a file part needs file.file_id (from "
    "POST /v1/files).",
    "n": "Only n=1 is supported.",
    "stop": f"'stop' must be a string or a list of at most {MAX_STOP} non-empty strings.",
    "stop[]": f"'stop' must be a string or a list of at most {MAX_STOP} non-empty strings.",
    "files": f"'files' must be a list of at most {MAX_FILES} file ids (from POST /v1/files).",
    "files[]": "'files' must be a list of file ids (from POST /v1/files).",
}
_OPENAI = msgspec.json.Decoder(ChatCompletionRequest)
_KUWA = msgspec.json.Decoder(KuwaChatRequest)


def decode_chat_request(raw: bytes | bytearray | memoryview, dialect: Dialect) -> ChatRequest:
    """Decode and validate a request body's JSON bytes in one pass (the gateway's path)."""
    try:
        body: ChatCompletionRequest | KuwaChatRequest = (
            _OPENAI.decode(raw) if dialect == "openai" else _KUWA.decode(raw)
        )
    except msgspec.ValidationError as exc:
        body = whole_numbers(raw, BODIES[dialect], exc, MESSAGES)
    except msgspec.DecodeError as exc:
        raise SchemaError(f"The request body is not valid JSON: {exc}") from None
    return _request(body, dialect)


def parse_chat_request(body: Any, dialect: Dialect) -> ChatRequest:
    """Validate a decoded JSON body. Unknown fields are ignored.

    ``openai``: ``stream`` defaults to false and content may be a list of text parts.
    ``kuwa`` (the v1.0 API): ``stream`` defaults to true and content must be a string.
    """
    return _request(convert(body, BODIES[dialect], messages=MESSAGES), dialect)


def _request(body: ChatCompletionRequest | KuwaChatRequest, dialect: Dialect) -> ChatRequest:
    files: list[str] = []
    messages = tuple(
        Message(ROLE_ALIASES.get(m.role, m.role), _text(m.content, files)) for m in body.messages
    )
    if body.files:
        files += body.files
    if files:
        files = list(dict.fromkeys(files))
        if len(files) > MAX_FILES:
            raise SchemaError(f"A request may name at most {MAX_FILES} files.", "files")
    stream = body.stream
    if stream is None:
        stream = dialect == "kuwa"
    options = getattr(body, "stream_options", None)
    return ChatRequest(
        model=body.model,
        messages=messages,
        params=_params(body),
        stream=stream,
        include_usage=options is not None and options.include_usage,
        user=body.user,
        files=tuple(files),
    )


def _text(content: str | list[TextPart | FilePart], files: list[str]) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if isinstance(part, TextPart):
            texts.append(part.text)
        else:
            files.append(part.file.file_id)
    return "".join(texts)


def _params(body: _ChatBody) -> GenerationParams:
    top_k = body.top_k
    if top_k == -1:
        top_k = None  # vLLM's "no limit"
    elif top_k == 0:
        raise SchemaError("'top_k' must be at least 1 (or -1: no limit).", "top_k")
    # 64 bits, signed or not (what engines take); msgspec decodes any size of integer.
    if body.seed is not None and not -(2**63) <= body.seed <= 2**64 - 1:
        raise SchemaError("'seed' must be an integer from -2^63 to 2^64-1.", "seed")
    stop = body.stop
    return GenerationParams(
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        stop=((stop,) if stop else ()) if isinstance(stop, str) else tuple(stop or ()),
        seed=body.seed,
        ignore_eos=body.ignore_eos,
        top_k=top_k,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        repetition_penalty=body.repetition_penalty,
    )
