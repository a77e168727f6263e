"""The public API's response bodies (``/v1``, ``/v1.0``, health, files) as typed structs.

The gateway encodes its JSON answers through them and the OpenAPI document takes their JSON
Schema from them. Streamed chunks are written from precomputed bytes on the hot path; a test
decodes them back into :class:`ChatCompletionChunk` and :class:`KuwaStreamEvent`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

JOB_ID = "chatcmpl-8fbd3a3c2b4e4f0e9d1c0b7a6e5d4c3b"
FINISH_REASONS = ("stop", "length", "cancelled")
PURPOSES = ("assistants", "user_data")

JobId = Annotated[str, Meta(pattern="^chatcmpl-[0-9a-f]+$", examples=[JOB_ID])]
FileId = Annotated[str, Meta(pattern="^file-[0-9a-f]+$", examples=["file-0d1e2f"])]
FinishReason = Literal["stop", "length", "cancelled"]
Created = Annotated[int, Meta(description="Unix time the job was created.")]
AccessCode = Annotated[str, Meta(description="The access code.")]
Count = Annotated[int, Meta(ge=0)]


class Closed(msgspec.Struct, forbid_unknown_fields=True):
    """A response object with exactly the fields listed (additionalProperties: false)."""


class TokenUsage(Closed):
    prompt_tokens: Count
    completion_tokens: Count
    total_tokens: Count


class ErrorDetail(Closed):
    message: str
    type: str
    param: Annotated[
        str | None, Meta(description='The field at fault, e.g. "messages[2].content".')
    ]
    code: Annotated[str | None, Meta(description="See the error codes below.")]


class ErrorResponse(Closed):
    """Kuwa's one error shape (kuwa.errors.error_body)."""

    error: ErrorDetail


class Citation(Closed):
    n: Annotated[int, Meta(ge=1, description="Cited as `[n]`.")]
    file: FileId
    name: Annotated[str, Meta(description="The file's name.")]
    page: Annotated[
        int | None, Meta(description="1-based page, slide or sheet; null for formats without.")
    ]
    text: Annotated[str, Meta(description="The passage.")]


Citations = Annotated[
    list[Citation],
    Meta(description="With files: the passages the model was given, numbered as it cites them."),
]


# --- /v1/chat/completions -----------------------------------------------------------------------
class AssistantMessage(Closed):
    role: Literal["assistant"]
    content: str
    refusal: None


class Choice(Closed):
    index: Literal[0]
    message: AssistantMessage
    logprobs: None
    finish_reason: FinishReason


class ChatCompletion(Closed):
    id: JobId
    object: Literal["chat.completion"]
    created: Created
    model: AccessCode
    choices: Annotated[list[Choice], Meta(min_length=1, max_length=1)]
    usage: TokenUsage
    citations: Citations | UnsetType = UNSET


class Delta(Closed):
    role: Literal["assistant"] | UnsetType = UNSET
    content: str | UnsetType = UNSET


class ChunkChoice(Closed):
    index: Literal[0]
    delta: Delta
    logprobs: None
    finish_reason: FinishReason | None


class ChatCompletionChunk(Closed):
    id: JobId
    object: Literal["chat.completion.chunk"]
    created: Created
    model: AccessCode
    choices: Annotated[
        list[ChunkChoice], Meta(max_length=1, description="Empty only in the usage chunk.")
    ]
    usage: (
        Annotated[
            TokenUsage | None,
            Meta(
                description="Only with `stream_options.include_usage`: null on every chunk but "
                "the last."
            ),
        ]
        | UnsetType
    ) = UNSET
    citations: (
        Annotated[list[Citation], Meta(description="On the first chunk only.")] | UnsetType
    ) = UNSET


# --- /v1.0/chat/completions ---------------------------------------------------------------------
class KuwaDelta(Closed):
    content: Annotated[str, Meta(min_length=1, max_length=1, description="Exactly one character.")]
    role: Literal["assistant"]


class KuwaStreamChoice(Closed):
    delta: KuwaDelta


class KuwaStreamEvent(Closed):
    """One event of a v1.0 stream, as the Multi-Chat 1.0 guide shows it."""

    choices: Annotated[list[KuwaStreamChoice], Meta(min_length=1, max_length=1)]
    created: Created
    id: JobId
    model: AccessCode
    object: Literal["chat.completion"]
    usage: Annotated[list[Any], Meta(max_length=0, description="Always `[]`.")]
    citations: (
        Annotated[
            list[Citation],
            Meta(
                description="With files: on the first event only (Kuwa's addition; the guide's "
                "clients never send files, and their events are unchanged)."
            ),
        ]
        | UnsetType
    ) = UNSET


class KuwaAnswer(Closed):
    content: str
    role: Literal["assistant"]


class KuwaChoice(Closed):
    index: Literal[0]
    message: KuwaAnswer
    finish_reason: FinishReason


class KuwaChatCompletion(Closed):
    choices: Annotated[list[KuwaChoice], Meta(min_length=1, max_length=1)]
    created: Created
    id: JobId
    model: AccessCode
    object: Literal["chat.completion"]
    usage: TokenUsage
    citations: Citations | UnsetType = UNSET


# --- models, health -------------------------------------------------------------------------
class Model(Closed):
    id: Annotated[str, Meta(description="The access code: use it as `model`.")]
    object: Literal["model"]
    created: Annotated[int, Meta(description="The last heartbeat seen.")]
    owned_by: Literal["kuwa"]
    name: Annotated[str, Meta(description="The catalog's name for it.")]


class ModelList(Closed):
    object: Literal["list"]
    data: list[Model]


class Health(Closed):
    status: Literal["ok"]
    streams: Annotated[int, Meta(ge=0, description="Open job streams in this gateway process.")]


# --- /v1/embeddings -----------------------------------------------------------------------------
class Embedding(Closed):
    object: Literal["embedding"]
    index: Annotated[int, Meta(ge=0, description="The input's position.")]
    embedding: Annotated[
        list[float] | Annotated[str, Meta(extra_json_schema={"contentEncoding": "base64"})],
        Meta(
            description="A unit vector (length 1): the model's last hidden state pooled over "
            "the text's tokens; base64 with `encoding_format: base64`."
        ),
    ]


class EmbeddingUsage(Closed):
    prompt_tokens: Count
    total_tokens: Count


class EmbeddingList(Closed):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


# --- /v1/files ------------------------------------------------------------------------------
class FileObject(Closed):
    id: FileId
    object: Literal["file"]
    bytes: Count
    created_at: int
    expires_at: None
    filename: str
    purpose: Literal["assistants", "user_data"]
    status: Annotated[
        Literal["error", "processed", "uploaded"],
        Meta(
            description="OpenAI's: `uploaded` while Kuwa indexes it, then `processed` (usable "
            "in a chat) or `error`."
        ),
    ]
    status_details: Annotated[str | None, Meta(description="Why: error.")]
    kuwa_status: Literal["queued", "indexing", "ready", "failed"]
    pages: Annotated[int, Meta(ge=0, description="Pages, slides or sheets.")]
    passages: Annotated[int, Meta(ge=0, description="Passages indexed.")]


class FileList(Closed):
    object: Literal["list"]
    data: list[FileObject]
    has_more: Literal[False]


class FileDeleted(Closed):
    id: FileId
    object: Literal["file"]
    deleted: Literal[True]


class FileUpload(msgspec.Struct):
    """A document to chat with, as `multipart/form-data`."""

    file: Annotated[bytes, Meta(description="The document (its part's filename names it).")]
    purpose: Literal["assistants", "user_data"] = "assistants"
