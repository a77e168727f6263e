"""Embeddings: the ``POST /v1/embeddings`` request, and how an embedding job's answer travels.

An embedding job is a :class:`~kuwa.schemas.Job` of kind ``embed`` whose ``inputs`` are the
texts. Its executor answers with text like any job, so the queue, the chunk stream, its
transcript, cancelling and the executor watch all work unchanged: the text is the vectors,
one row per input in input order, as little-endian float32, base64-encoded
(:func:`pack_vectors`); the final chunk's usage counts the tokens read as prompt tokens.
"""

from __future__ import annotations

import base64
import binascii
import sys
import time
import uuid
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kuwa.schemas.chat import SchemaError
from kuwa.schemas.job import Job, JobKind

MAX_INPUTS = 2048  # texts in one request, as OpenAI's API allows
# Texts in one embedding job: a request with more is sent as several jobs, so that no answer
# (one chunk message: 64 vectors of 4,096 floats is 1.4 MB of base64) grows too big for pub/sub.
JOB_INPUTS = 64
ENCODING_FORMATS = ("float", "base64")
FLOAT_BYTES = 4


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: str
    inputs: tuple[str, ...]
    encoding_format: str = "float"
    user: str | None = None


def parse_embedding_request(body: Any) -> EmbeddingRequest:
    """Validate a decoded JSON body (OpenAI's shape). Unknown fields are ignored, except
    ``dimensions``: a model's vectors have one size here, so asking for another is an error
    rather than a silent surprise."""
    if not isinstance(body, dict):
        raise SchemaError("The request body must be a JSON object.")
    model = body.get("model")
    if model is None or model == "":
        raise SchemaError("'model' is required: the access code of an embedding model.", "model")
    if not isinstance(model, str):
        raise SchemaError("'model' must be a string.", "model")
    raw = body.get("input")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise SchemaError("'input' must be a string or a non-empty list of strings.", "input")
    if len(raw) > MAX_INPUTS:
        raise SchemaError(f"'input' may hold at most {MAX_INPUTS} texts.", "input")
    for i, text in enumerate(raw):
        if not isinstance(text, str):
            raise SchemaError(
                f"input[{i}] must be a string (token arrays are not supported).", f"input[{i}]"
            )
        if not text:
            raise SchemaError(f"input[{i}] is empty; every input must hold some text.", "input")
    encoding = body.get("encoding_format")
    if encoding is None:
        encoding = "float"
    if encoding not in ENCODING_FORMATS:
        raise SchemaError("'encoding_format' must be float or base64.", "encoding_format")
    if body.get("dimensions") is not None:
        raise SchemaError(
            "'dimensions' is not supported: each model makes vectors of its own size.",
            "dimensions",
        )
    user = body.get("user")
    return EmbeddingRequest(
        model=model,
        inputs=tuple(raw),
        encoding_format=encoding,
        user=user if isinstance(user, str) else None,
    )


def embedding_job(
    model: str, inputs: Sequence[str], *, user_id: int | None = None, group: str | None = None
) -> Job:
    """A new embedding job for at most :data:`JOB_INPUTS` texts (``user_id`` None: Kuwa's
    own, e.g. document retrieval's)."""
    if not 0 < len(inputs) <= JOB_INPUTS:
        raise ValueError(f"an embedding job takes 1 to {JOB_INPUTS} texts, not {len(inputs)}")
    return Job(
        id=f"embd-{uuid.uuid4().hex}",
        model=model,
        messages=(),
        user_id=user_id,
        created=time.time(),
        group=group,
        kind=JobKind.EMBED,
        inputs=tuple(inputs),
    )


def pack_vectors(rows: bytes) -> str:
    """An embedding job's answer text: ``rows`` (float32, little-endian, row after row)."""
    return base64.b64encode(rows).decode("ascii")


def unpack_vectors(text: str, count: int) -> list[bytes]:
    """The ``count`` rows of an embedding job's answer, each as little-endian float32 bytes.
    Raises :class:`ValueError` when the answer is not ``count`` rows of one size."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"the embedding answer is not base64: {exc}") from None
    if count <= 0 or not raw or len(raw) % (count * FLOAT_BYTES):
        raise ValueError(f"the embedding answer ({len(raw)} bytes) is not {count} float32 rows")
    size = len(raw) // count
    return [raw[i * size : (i + 1) * size] for i in range(count)]


def row_floats(row: bytes) -> list[float]:
    """One row (little-endian float32) as Python floats."""
    values = array("f")
    values.frombytes(row)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def pack_floats(rows: Sequence[Sequence[float]]) -> bytes:
    """Rows of Python floats as little-endian float32 bytes, row after row."""
    values = array("f", (float(x) for row in rows for x in row))
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


def row_base64(row: bytes) -> str:
    """One row as OpenAI's ``encoding_format: base64`` has it (little-endian float32)."""
    return base64.b64encode(row).decode("ascii")
