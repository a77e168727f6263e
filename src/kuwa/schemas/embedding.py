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
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from kuwa.schemas.decode import SchemaError, convert, whole_numbers
from kuwa.schemas.job import Job, JobKind

MAX_INPUTS = 2048  # texts in one request, as OpenAI's API allows
# Texts in one embedding job: a request with more is sent as several jobs, so that no answer
# (one chunk message: 64 vectors of 4,096 floats is 1.4 MB of base64) grows too big for pub/sub.
JOB_INPUTS = 64
ENCODING_FORMATS = ("float", "base64")
FLOAT_BYTES = 4


NonEmpty = Annotated[str, Meta(min_length=1)]


class EmbeddingRequest(msgspec.Struct, kw_only=True, frozen=True):
    """``POST /v1/embeddings`` (OpenAI's shape). Unknown fields are ignored, except
    ``dimensions``: a model's vectors have one size here, so asking for another is an error
    rather than a silent surprise."""

    MESSAGES: ClassVar[dict[str, str]] = {
        "model": "'model' is required: the access code of an embedding model.",
        "input[]": "In {param}: every input must be a non-empty string (token arrays are not "
        "supported).",
        "encoding_format": "'encoding_format' must be float or base64.",
        "dimensions": "'dimensions' is not supported: each model makes vectors of its own size.",
    }

    model: Annotated[
        NonEmpty,
        Meta(
            description="The access code of an embedding model (an executor started with "
            "`--backend embeddings`)."
        ),
    ]
    input: Annotated[
        NonEmpty | Annotated[list[NonEmpty], Meta(min_length=1, max_length=MAX_INPUTS)],
        Meta(
            description="A text, or a list of texts. A text longer than the model's context "
            "is cut to fit. Token arrays are not accepted."
        ),
    ]
    encoding_format: Annotated[
        Literal["float", "base64"] | None,
        Meta(
            description="`base64`: each vector as little-endian float32 bytes, base64-encoded "
            "(the OpenAI SDKs ask for it); null: float."
        ),
    ] = "float"
    user: str | None = None
    dimensions: Annotated[
        None, Meta(description="Not supported: each model makes vectors of its own size.")
    ] = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,) if isinstance(self.input, str) else tuple(self.input)


_DECODER = msgspec.json.Decoder(EmbeddingRequest)


def decode_embedding_request(raw: bytes | bytearray) -> EmbeddingRequest:
    """A request body's JSON bytes, decoded and checked in one pass."""
    try:
        return _normal(_DECODER.decode(raw))
    except msgspec.ValidationError as exc:
        return _normal(whole_numbers(raw, EmbeddingRequest, exc, EmbeddingRequest.MESSAGES))
    except msgspec.DecodeError as exc:
        raise SchemaError(f"The request body is not valid JSON: {exc}") from None


def parse_embedding_request(body: Any) -> EmbeddingRequest:
    """Validate a decoded JSON body (OpenAI's shape); see :class:`EmbeddingRequest`."""
    return _normal(convert(body, EmbeddingRequest, messages=EmbeddingRequest.MESSAGES))


def _normal(request: EmbeddingRequest) -> EmbeddingRequest:
    if request.encoding_format is None:
        return msgspec.structs.replace(request, encoding_format="float")
    return request


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
