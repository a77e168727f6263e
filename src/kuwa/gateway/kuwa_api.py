"""``/v1.0``: the Kuwa Multi-Chat 1.0 API, exactly as the seed's guide and clients use it.

Every streamed event carries exactly one character (the seed's Python client prints
``content[-1]``), JSON is ASCII-escaped like the original PHP server's (so a client that
decodes each network read on its own never splits a multi-byte character), and the stream
ends with ``event: close``.

A request that names ``files`` (Kuwa's addition; the seed's clients never send it) gets the
passages its model was given as ``citations``: a top-level key of the JSON answer, or of
the stream's first event. No event is added for them: the seed's Python client reads
``content[-1]`` of every ``data:`` event, so an event without a character would break it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import cast

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
from kuwa.gateway.openai_api import citations
from kuwa.gateway.sse import CLOSE, END, SSEResponse, frame, framing
from kuwa.gateway.start import start_api_chat
from kuwa.gateway.state import state_of
from kuwa.schemas import SchemaError, decode_chat_request
from kuwa.schemas import api as wire
from kuwa.schemas.chat import KuwaChatRequest


@endpoint(
    "Chat with one model (Kuwa Multi-Chat 1.0)",
    body=KuwaChatRequest,
    decode=False,
    answer=wire.KuwaChatCompletion,
)
async def chat_completions(request: Request) -> Response:
    state = state_of(request)
    user = await state.auth.authenticate(request)
    raw = await read_body(request, state.settings.max_body_bytes)
    try:
        chat = decode_chat_request(raw, "kuwa")
    except SchemaError as exc:
        raise schema_error(exc) from None
    stream = await start_api_chat(state, request, chat, user)
    if chat.stream:
        return SSEResponse(_events(stream, chat.model))
    try:
        answer = await unless_disconnected(request, stream.collect())
    finally:
        await stream.close()
    return JSONResponse(
        wire.KuwaChatCompletion(
            choices=[
                wire.KuwaChoice(
                    index=0,
                    message=wire.KuwaAnswer(answer.text, "assistant"),
                    finish_reason=cast(wire.FinishReason, answer.finish_reason),
                )
            ],
            created=stream.created,
            id=stream.id,
            model=chat.model,
            object="chat.completion",
            usage=wire.TokenUsage(**answer.usage.to_openai()),
            citations=citations(stream.citations),
        )
    )


async def _events(stream: ChatStream, model: str) -> AsyncIterator[bytes]:
    """The answer's events. Not the request: its messages are not kept while it streams."""
    head, tail = framing(
        b'{"choices":[{"delta":{"content":',
        f',"role":"assistant"}}}}],"created":{stream.created},"id":"{stream.id}",'
        f'"model":{json.dumps(model)},"object":"chat.completion","usage":[]}}'.encode(),
    )
    # With files, the first event also carries the citations (a key the seed's clients never
    # read; they never send files either): the event ends "citations":[...]} instead of }.
    cited = b',"citations":' + json.dumps(stream.citations).encode() if stream.citations else b""
    try:
        async for chunk in stream.chunks():
            if chunk.text:
                events = [head + json.dumps(ch).encode() + tail for ch in chunk.text]
                if cited:
                    events[0] = events[0][: -len(END) - 1] + framing(b"", cited + b"}")[1]
                    cited = b""
                yield b"".join(events)
    except KuwaError as exc:
        yield frame(json.dumps(exc.body()).encode())
    finally:
        await stream.close()
    yield CLOSE
