"""``/v1``: the OpenAI chat completions and models API, as the official SDKs expect it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

import msgspec
import orjson
from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response

from kuwa.errors import KuwaError
from kuwa.gateway.chat import ChatStream
from kuwa.gateway.endpoint import endpoint
from kuwa.gateway.http import (
    JSONResponse,
    read_body,
    schema_error,
    unless_disconnected,
)
from kuwa.gateway.models import require_api_access
from kuwa.gateway.sse import DONE, END, SSEResponse, data_event, framing, with_id
from kuwa.gateway.start import start_api_chat
from kuwa.gateway.state import state_of
from kuwa.schemas import Chunk, SchemaError, decode_chat_request
from kuwa.schemas import api as wire
from kuwa.schemas.chat import ChatCompletionRequest


@endpoint(
    "Chat with one model (OpenAI chat completions)",
    body=ChatCompletionRequest,
    decode=False,
    answer=wire.ChatCompletion,
)
async def chat_completions(request: Request) -> Response:
    state = state_of(request)
    user = await state.auth.authenticate(request)
    raw = await read_body(request, state.settings.max_body_bytes)
    try:
        chat = decode_chat_request(raw, "openai")
    except SchemaError as exc:
        raise schema_error(exc) from None
    stream = await start_api_chat(state, request, chat, user)
    if chat.stream:
        return SSEResponse(_events(stream, chat.model, chat.include_usage))
    try:
        answer = await unless_disconnected(request, stream.collect())
    finally:
        await stream.close()
    return JSONResponse(
        wire.ChatCompletion(
            id=stream.id,
            object="chat.completion",
            created=stream.created,
            model=chat.model,
            choices=[
                wire.Choice(
                    index=0,
                    message=wire.AssistantMessage("assistant", answer.text, None),
                    logprobs=None,
                    finish_reason=cast(wire.FinishReason, answer.finish_reason),
                )
            ],
            usage=wire.TokenUsage(**answer.usage.to_openai()),
            citations=citations(stream.citations),
        )
    )


def citations(found: list[dict[str, Any]] | None) -> list[wire.Citation] | UnsetType:
    """The citations of an answer (unset without any: the field is left out)."""
    return msgspec.convert(found, list[wire.Citation]) if found else UNSET


class ChunkFormat:
    """OpenAI ``chat.completion.chunk`` events for one job, built from precomputed bytes."""

    __slots__ = (
        "created",
        "finish_tail",
        "head",
        "include_usage",
        "job_id",
        "model",
        "tail",
        "usage_tail",
    )

    def __init__(self, job_id: str, created: int, model: str, include_usage: bool) -> None:
        self.job_id, self.created, self.model = job_id, created, model
        self.include_usage = include_usage
        self.usage_tail = b',"usage":null' if include_usage else b""
        self.head, self.tail = framing(
            f'{{"id":"{job_id}","object":"chat.completion.chunk",'
            f'"created":{created},"model":{json.dumps(model)},'
            '"choices":[{"index":0,"delta":'.encode(),
            b',"logprobs":null,"finish_reason":null}]' + self.usage_tail + b"}",
        )
        self.finish_tail = framing(b"", b"}]" + self.usage_tail + b"}")[1]

    def role(self, citations: list[dict[str, Any]] | None = None) -> bytes:
        """The first event; with attached files it carries their ``citations``."""
        if not citations:
            return self.head + b'{"role":"assistant","content":""}' + self.tail
        _, tail = framing(b"", b',"citations":' + orjson.dumps(citations) + b"}")
        return self.head + b'{"role":"assistant","content":""}' + self.tail[: -len(END) - 1] + tail

    def chunk(self, chunk: Chunk, event_id: bool = False) -> bytes:
        """The events for one chunk message (its text, then the finish and usage if final);
        with ``event_id`` they carry the chunk's number as their SSE ``id``."""
        out = b""
        if chunk.text:
            out = self.head + b'{"content":' + orjson.dumps(chunk.text) + b"}" + self.tail
        if chunk.final:
            reason = orjson.dumps(chunk.finish_reason)
            out += self.head + b'{},"logprobs":null,"finish_reason":' + reason + self.finish_tail
            if self.include_usage and chunk.usage is not None:
                out += data_event(
                    {
                        "id": self.job_id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": chunk.usage.to_openai(),
                    }
                )
        if out and event_id:  # lets a client resume after this chunk (Last-Event-ID)
            out = with_id(chunk.seq, out)
        return out


async def _events(stream: ChatStream, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    """The answer's events. Not the request: its messages are not kept while it streams."""
    fmt = ChunkFormat(stream.id, stream.created, model, include_usage)
    try:
        yield fmt.role(stream.citations)
        async for chunk in stream.chunks():
            out = fmt.chunk(chunk, event_id=True)  # resumable: GET /v1/jobs/{id}/events
            if out:
                yield out
    except KuwaError as exc:
        yield data_event(exc.body())
    finally:
        await stream.close()
    yield DONE


@endpoint("The models you may use now", answer=wire.ModelList)
async def list_models(request: Request) -> Response:
    state = state_of(request)
    user = await state.auth.authenticate(request)
    require_api_access(user)
    live = dict(await state.chat.live_models())
    models = await state.models.usable(user, list(live))
    return JSONResponse(
        wire.ModelList(
            object="list",
            data=[
                wire.Model(
                    id=m.access_code,
                    object="model",
                    created=int(float(str(live[m.access_code].get("seen", 0)))),
                    owned_by="kuwa",
                    name=m.name,
                )
                for m in models
            ],
        )
    )
