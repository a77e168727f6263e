"""``POST /v1/embeddings`` in the OpenAPI document (see :mod:`.openapi`); its bounds come from
:mod:`kuwa.schemas.embedding`, the validator's."""

from __future__ import annotations

from typing import Any

from kuwa.gateway.openapi_schemas import JSON, errors, obj, ref
from kuwa.schemas.embedding import ENCODING_FORMATS, JOB_INPUTS, MAX_INPUTS

Schema = dict[str, Any]
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
TEXT: Schema = {"type": "string", "minLength": 1}
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


def embedding_schemas() -> dict[str, Schema]:
    count: Schema = {"type": "integer", "minimum": 0}
    return {
        "EmbeddingRequest": obj(
            {
                "model": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The access code of an embedding model (an executor "
                    "started with `--backend embeddings`).",
                },
                "input": {
                    "oneOf": [
                        TEXT,
                        {"type": "array", "items": TEXT, "minItems": 1, "maxItems": MAX_INPUTS},
                    ],
                    "description": "A text, or a list of texts. A text longer than the "
                    "model's context is cut to fit. Token arrays are not accepted.",
                },
                "encoding_format": {
                    "enum": [*ENCODING_FORMATS, None],
                    "default": "float",
                    "description": "`base64`: each vector as little-endian float32 bytes, "
                    "base64-encoded (the OpenAI SDKs ask for it).",
                },
                "user": {"type": "string"},
                "dimensions": {
                    "type": "null",
                    "description": "Not supported: each model makes vectors of its own size.",
                },
            },
            ["model", "input"],
            extra=True,
        ),
        "Embedding": obj(
            {
                "object": {"const": "embedding"},
                "index": {**count, "description": "The input's position."},
                "embedding": {
                    "oneOf": [
                        {"type": "array", "items": {"type": "number"}},
                        {"type": "string", "contentEncoding": "base64"},
                    ],
                    "description": "A unit vector (length 1): the model's last hidden state "
                    "pooled over the text's tokens.",
                },
            }
        ),
        "EmbeddingList": obj(
            {
                "object": {"const": "list"},
                "data": {"type": "array", "items": ref("Embedding")},
                "model": {"type": "string"},
                "usage": obj({"prompt_tokens": count, "total_tokens": count}),
            }
        ),
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
