"""Wire schemas: pure data and validation. Imports nothing of Kuwa's and does no I/O."""

from kuwa.schemas.chat import (
    ChatCompletionRequest,
    ChatRequest,
    GenerationParams,
    KuwaChatRequest,
    Message,
    Passage,
    decode_chat_request,
    parse_chat_request,
)
from kuwa.schemas.decode import SchemaError
from kuwa.schemas.embedding import EmbeddingRequest, parse_embedding_request
from kuwa.schemas.job import Chunk, Job, JobKind, JobStatus, Usage

__all__ = [
    "ChatCompletionRequest",
    "ChatRequest",
    "Chunk",
    "EmbeddingRequest",
    "GenerationParams",
    "Job",
    "JobKind",
    "JobStatus",
    "KuwaChatRequest",
    "Message",
    "Passage",
    "SchemaError",
    "Usage",
    "decode_chat_request",
    "parse_chat_request",
    "parse_embedding_request",
]
