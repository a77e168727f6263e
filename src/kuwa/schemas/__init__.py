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
from kuwa.schemas.job import Chunk, Job, JobStatus, Usage

__all__ = [
    "ChatCompletionRequest",
    "ChatRequest",
    "Chunk",
    "GenerationParams",
    "Job",
    "JobStatus",
    "KuwaChatRequest",
    "Message",
    "Passage",
    "SchemaError",
    "Usage",
    "decode_chat_request",
    "parse_chat_request",
]
