"""Wire schemas: pure data and validation. Imports nothing of Kuwa's and does no I/O."""

from kuwa.schemas.chat import (
    ChatRequest,
    GenerationParams,
    Message,
    Passage,
    SchemaError,
    parse_chat_request,
)
from kuwa.schemas.embedding import EmbeddingRequest, parse_embedding_request
from kuwa.schemas.job import Chunk, Job, JobKind, JobStatus, Usage

__all__ = [
    "ChatRequest",
    "Chunk",
    "EmbeddingRequest",
    "GenerationParams",
    "Job",
    "JobKind",
    "JobStatus",
    "Message",
    "Passage",
    "SchemaError",
    "Usage",
    "parse_chat_request",
    "parse_embedding_request",
]
