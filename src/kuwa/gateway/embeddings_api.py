"""``/v1/embeddings``: OpenAI's embeddings API, answered by Kuwa's embedding executors.

``model`` is the access code of an embedding model (an executor with ``--backend
embeddings``), checked like a chat model: API access, the model's permission. The texts go
to its executors as embedding jobs of at most :data:`~kuwa.schemas.embedding.JOB_INPUTS`
texts each, one after another; the request counts once against the user's requests per
minute, and each job takes one of their running-job slots while it runs. A chat model asked
for embeddings answers 400 (``wrong_model_type``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kuwa.accounts import UserInfo
from kuwa.errors import JobFailedError
from kuwa.gateway.endpoint import endpoint
from kuwa.gateway.http import JSONResponse, read_body, schema_error, unless_disconnected
from kuwa.gateway.models import require_api_access
from kuwa.gateway.state import GatewayState, state_of
from kuwa.schemas import EmbeddingRequest, SchemaError
from kuwa.schemas import api as wire
from kuwa.schemas.embedding import (
    JOB_INPUTS,
    decode_embedding_request,
    embedding_job,
    row_base64,
    row_floats,
    unpack_vectors,
)


@endpoint(
    "Vectors of texts (OpenAI embeddings)",
    body=EmbeddingRequest,
    decode=False,
    answer=wire.EmbeddingList,
)
async def create_embeddings(request: Request) -> Response:
    state = state_of(request)
    user = await state.auth.authenticate(request)
    require_api_access(user)
    raw = await read_body(request, state.settings.max_body_bytes)
    try:
        wanted = decode_embedding_request(raw)
    except SchemaError as exc:
        raise schema_error(exc) from None
    rows, tokens = await unless_disconnected(request, embed(state, wanted, user))
    encode = row_floats if wanted.encoding_format == "float" else row_base64
    data: list[dict[str, Any]] = [
        {"object": "embedding", "index": i, "embedding": encode(row)} for i, row in enumerate(rows)
    ]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": wanted.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


async def embed(
    state: GatewayState, wanted: EmbeddingRequest, user: UserInfo
) -> tuple[list[bytes], int]:
    """The inputs' vectors (little-endian float32 rows) and the tokens read."""
    model = await state.models.resolve(user, wanted.model)
    rows: list[bytes] = []
    tokens = 0
    for start in range(0, len(wanted.inputs), JOB_INPUTS):
        texts = wanted.inputs[start : start + JOB_INPUTS]
        job = embedding_job(wanted.model, texts, user_id=user.id, group=user.group)
        stream = await state.chat.launch(
            job,
            max_jobs=user.max_jobs,
            per_minute=user.requests_per_minute if start == 0 else 0,  # one request, once
            idle_timeout=model.idle_timeout,
            check_model=False,  # resolved above
        )
        try:
            answer = await stream.collect()
        finally:
            await stream.close()
        try:
            got = unpack_vectors(answer.text, len(texts))
        except ValueError as exc:
            raise JobFailedError(
                f"The model gave no usable vectors: {exc}", code="model_error"
            ) from None
        if rows and len(got[0]) != len(rows[0]):
            raise JobFailedError(
                f"The executors of '{wanted.model}' make vectors of different sizes.",
                code="model_error",
            )
        rows += got
        tokens += answer.usage.prompt_tokens
    return rows, tokens
