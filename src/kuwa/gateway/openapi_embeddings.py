"""``POST /v1/embeddings`` in the OpenAPI document (see :mod:`.openapi`); its schemas are the
structs the gateway decodes and answers with (:mod:`kuwa.schemas.embedding`,
:mod:`kuwa.schemas.api`)."""

from __future__ import annotations

from typing import Any

from kuwa.gateway.openapi_schemas import JSON, errors, ref
from kuwa.schemas.embedding import JOB_INPUTS

Schema = dict[str, Any]
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
EXAMPLE_REQUEST = {"model": "bge-m3", "input": ["The red car is parked.", "汽車停在哪裡"]}
EXAMPLE = {
    "object": "list",
    "data": [
        {"object": "embedding", "index": 0, "embedding": [0.0123, -0.0456, 0.0789]},
        {"object": "embedding", "index": 1, "embedding": [0.0234, -0.0345, 0.0456]},
    ],
    "model": "bge-m3",
    "usage": {"prompt_tokens": 14, "total_tokens": 14},
}


def embedding_paths() -> dict[str, Schema]:
    return {
        "/v1/embeddings": {
            "post": {
                "tags": ["openai"],
                "operationId": "createEmbedding",
                "summary": "Vectors of texts (OpenAI embeddings)",
                "description": "Served by Kuwa's embedding executors, with the same access "
                f"checks as a chat model. The texts are sent as embedding jobs of at most "
                f"{JOB_INPUTS} texts each; the request counts once against your requests per "
                "minute. A chat model answers 400 `wrong_model_type`.",
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": ref("EmbeddingRequest"), "example": EXAMPLE_REQUEST}
                    },
                },
                "responses": {
                    "200": {
                        "description": "One vector per input, in input order.",
                        "content": {JSON: {"schema": ref("EmbeddingList"), "example": EXAMPLE}},
                    },
                    **errors(400, 401, 403, 404, 413, 429, 500, 503),
                },
            }
        }
    }
