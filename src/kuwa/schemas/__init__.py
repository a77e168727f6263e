"""Wire schemas: pure data and validation. Imports nothing of Kuwa's and does no I/O."""

from kuwa.schemas.chat import (
    ChatRequest,
    GenerationParams,
    Message,
    Passage,
    SchemaError,
    parse_chat_request,
)
from kuwa.schemas.job import Chunk, Job, JobStatus, Usage

__all__ = [
    "ChatRequest",
    "Chunk",
    "GenerationParams",
    "Job",
    "JobStatus",
    "Message",
    "Passage",
    "SchemaError",
    "Usage",
    "parse_chat_request",
]
