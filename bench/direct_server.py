"""The direct baseline for ``stream_bench.py``: the debug backend's tokens, no broker.

A bare Starlette app on uvicorn with the gateway's uvicorn settings (uvloop and httptools
when installed, ``log_config=None``, logging at INFO like ``kuwa-cli gateway start``). Its
``POST /v1/chat/completions`` streams the last user message back, one OpenAI-style
``data: {json}`` event per token, produced exactly like the debug backend at zero delay:
``kuwa.executors.debug.tokenize`` of the prompt and ``await asyncio.sleep(0)`` before each
token. The events are framed byte for byte like the gateway's ``/v1`` stream (a role event,
one content event per token, a finish event, ``data: [DONE]``), so the client parses both
the same way. ``max_tokens`` is honoured (the benchmark's warm-up uses it).

It is also ``proxy_bench.py``'s fake OpenAI upstream: ``--pace-ms`` sleeps that long before
each token (a real model's pace) instead of yielding once, ``"stream": false`` answers with
one ``chat.completion`` object, and ``stream_options.include_usage`` adds a usage chunk.

Run: ``python bench/direct_server.py --port 8001 [--pace-ms 10] [--no-access-log]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from kuwa.executors.debug import tokenize

DONE = b"data: [DONE]\n\n"
PACE_S = 0.0  # --pace-ms: the time before each token


async def chat_completions(request: Request) -> Response:
    body = orjson.loads(await request.body())
    messages = body.get("messages") or []
    prompt = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    tokens = tokenize(prompt)
    limit = body.get("max_tokens")
    finish = "stop"
    if limit is not None and len(tokens) > limit:
        tokens, finish = tokens[:limit], "length"
    model = str(body.get("model", ""))
    usage = {
        "prompt_tokens": len(tokenize(prompt)),
        "completion_tokens": len(tokens),
        "total_tokens": len(tokenize(prompt)) + len(tokens),
    }
    if not body.get("stream"):
        if PACE_S:
            await asyncio.sleep(PACE_S * len(tokens))
        return Response(
            orjson.dumps(
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(tokens)},
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                }
            ),
            media_type="application/json",
        )
    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return StreamingResponse(
        _events(tokens, finish, model, usage if with_usage else None),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _events(
    tokens: list[str], finish: str, model: str, usage: dict[str, int] | None = None
) -> AsyncIterator[bytes]:
    head = (
        f'data: {{"id":"chatcmpl-{uuid.uuid4().hex}","object":"chat.completion.chunk",'
        f'"created":{int(time.time())},"model":{orjson.dumps(model).decode()},'
        '"choices":[{"index":0,"delta":'
    ).encode()
    content_tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
    yield head + b'{"role":"assistant","content":""}' + content_tail
    for token in tokens:
        await asyncio.sleep(PACE_S)  # at 0: exactly like the debug backend at zero delay
        yield head + b'{"content":' + orjson.dumps(token) + b"}" + content_tail
    yield head + b'{},"logprobs":null,"finish_reason":' + orjson.dumps(finish) + b"}]}\n\n"
    if usage is not None:
        yield b'data: {"object":"chat.completion.chunk","choices":[],"usage":%s}\n\n' % (
            orjson.dumps(usage)
        )
    yield DONE


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--pace-ms", type=float, default=0.0, help="time before each token")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args()
    global PACE_S
    PACE_S = args.pace_ms / 1000
    # The same logging and uvicorn settings as ``kuwa-cli gateway start``.
    logging.basicConfig(
        level="INFO",
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [direct] %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        log_level="info",
        log_config=None,
        access_log=not args.no_access_log,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
