"""A chat job as it travels through Redis, and the chunk messages that stream its answer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import orjson

from kuwa.schemas.chat import GenerationParams, Message, Passage


class JobKind(enum.StrEnum):
    """What a job asks of its executor: an answer to a chat, or the embeddings of texts."""

    CHAT = "chat"
    EMBED = "embed"


class JobStatus(enum.StrEnum):
    """The same lowercase values in Redis, the database and JSON."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    model: str
    messages: tuple[Message, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    user_id: int | None = None
    created: float = 0.0
    deliveries: int = 0
    modelfile: str | None = None  # a bot's Modelfile, applied on top of the model's
    chat_template: str | None = None  # a Modelfile's TEMPLATE, set by the executor
    upstream_key: str | None = field(default=None, repr=False)  # the user's own provider key
    group: str | None = None  # the user's group when the job was made (usage statistics)
    # Passages of documents to answer from; the executor puts them into the prompt through
    # the Modelfile's PASSAGES-TEMPLATE (or the default one).
    passages: tuple[Passage, ...] = ()
    # The inbox channel of the gateway process that started the job: executors publish its
    # chunks there (besides the job's own channel, which followers subscribe to).
    reply_to: str | None = None
    # False: the client wants the whole answer at once (a non-streamed API call), so the
    # executor may send it in one piece and ask an upstream for it in one piece.
    stream: bool = True
    # The language of the person asking (a BCP 47 tag such as "zh-TW"), when known: the
    # default PASSAGES-TEMPLATE speaks it.
    language: str | None = None
    # An embedding job (kind "embed") has no messages: its texts are ``inputs``, and its
    # answer is their vectors (:mod:`kuwa.schemas.embedding`).
    kind: JobKind = JobKind.CHAT
    inputs: tuple[str, ...] = ()

    def encode(self) -> bytes:
        extra: dict[str, Any] = {}
        if self.passages:
            extra["passages"] = [p.to_dict() for p in self.passages]
        if self.reply_to:
            extra["reply_to"] = self.reply_to
        if not self.stream:
            extra["stream"] = False
        if self.language:
            extra["language"] = self.language
        if self.kind != JobKind.CHAT:
            extra["kind"] = self.kind.value
            extra["inputs"] = list(self.inputs)
        return orjson.dumps(
            {
                **extra,
                "id": self.id,
                "model": self.model,
                "messages": [m.to_dict() for m in self.messages],
                "params": self.params.to_dict(),
                "user_id": self.user_id,
                "created": self.created,
                "deliveries": self.deliveries,
                "modelfile": self.modelfile,
                "upstream_key": self.upstream_key,
                "group": self.group,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> Job:
        data = orjson.loads(raw)
        return cls(
            id=data["id"],
            model=data["model"],
            messages=tuple(Message(m["role"], m["content"]) for m in data["messages"]),
            params=GenerationParams.from_dict(data.get("params") or {}),
            user_id=data.get("user_id"),
            created=data.get("created", 0.0),
            deliveries=data.get("deliveries", 0),
            modelfile=data.get("modelfile"),
            upstream_key=data.get("upstream_key"),
            group=data.get("group"),
            passages=tuple(Passage.from_dict(p) for p in data.get("passages") or ()),
            reply_to=data.get("reply_to"),
            stream=data.get("stream", True) is not False,
            language=data.get("language"),
            kind=JobKind(data.get("kind", JobKind.CHAT.value)),
            inputs=tuple(data.get("inputs") or ()),
        )


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class Chunk:
    """One message on a job's channel. ``seq`` counts from 0 with no gaps.

    The last chunk of a job has ``finish_reason`` set (``stop``, ``length``, ``cancelled``
    or ``error``); an error chunk also carries ``error`` = {"message", "code"}.
    """

    seq: int
    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    error: dict[str, str] | None = None

    @property
    def final(self) -> bool:
        return self.finish_reason is not None

    def encode(self) -> bytes:
        data: dict[str, Any] = {"s": self.seq}
        if self.text:
            data["t"] = self.text
        if self.finish_reason is not None:
            data["f"] = self.finish_reason
        if self.usage is not None:
            data["u"] = [self.usage.prompt_tokens, self.usage.completion_tokens]
        if self.error is not None:
            data["e"] = self.error
        return orjson.dumps(data)

    @classmethod
    def decode(cls, raw: bytes | str) -> Chunk:
        data = orjson.loads(raw)
        usage = data.get("u")
        return cls(
            seq=data["s"],
            text=data.get("t", ""),
            finish_reason=data.get("f"),
            usage=Usage(usage[0], usage[1]) if usage else None,
            error=data.get("e"),
        )
