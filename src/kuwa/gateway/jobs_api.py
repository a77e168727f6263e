"""``GET /v1/jobs/{id}/events``: follow one of your jobs, from the start or where you left.

A reader that lost its connection (or another tab of the same user) reconnects here and gets
the answer replayed from the job's transcript, then live, as OpenAI chunk events each with
an SSE ``id:`` (the chunk's sequence number). ``Last-Event-ID`` (or ``?after=N``) resumes
after that chunk. Following never cancels the job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from kuwa.broker import Subscription, redis_errors
from kuwa.errors import InvalidRequestError, KuwaError
from kuwa.gateway.chat import error_of
from kuwa.gateway.endpoint import SSE, endpoint
from kuwa.gateway.models import require_api_access
from kuwa.gateway.openai_api import ChunkFormat
from kuwa.gateway.sse import DONE, SSEResponse, data_event
from kuwa.gateway.state import state_of
from kuwa.schemas import Chunk


@endpoint("Follow or resume one of your jobs", media=SSE)
async def follow_job(request: Request) -> Response:
    state = state_of(request)
    user = await state.auth.authenticate(request)
    require_api_access(user)
    after = _after(request)
    job_id = request.path_params["job_id"]
    sub, job = await state.chat.follow(job_id, user.id)
    fmt = ChunkFormat(job_id, int(float(job.get("created", "0"))), job.get("model", ""), True)
    return SSEResponse(_events(sub, fmt, after + 1, state.chat.idle_timeout))


def _after(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "-1"
    try:
        after = int(raw)
    except ValueError:
        raise InvalidRequestError(
            "Last-Event-ID (or ?after=) must be a chunk number.", param="after"
        ) from None
    if after < -1:
        raise InvalidRequestError("Last-Event-ID (or ?after=) must be at least -1.", param="after")
    return after


async def _events(
    sub: Subscription, fmt: ChunkFormat, from_seq: int, idle_timeout: float
) -> AsyncIterator[bytes]:
    try:
        if from_seq == 0:
            yield fmt.role()
        over = from_seq > 0 and await _ended_before(sub, from_seq)  # resumed after the end
        if not over:
            async for chunk in sub.chunks(idle_timeout=idle_timeout, from_seq=from_seq):
                if chunk.error is not None:
                    if chunk.text:
                        yield fmt.chunk(Chunk(chunk.seq, chunk.text), event_id=True)
                    raise error_of(chunk)
                out = fmt.chunk(chunk, event_id=True)
                if out:
                    yield out
    except KuwaError as exc:
        yield data_event(exc.body())
    finally:
        await sub.close()
    yield DONE


async def _ended_before(sub: Subscription, from_seq: int) -> bool:
    """Whether the job's final chunk came before ``from_seq`` (nothing more will come)."""
    with redis_errors("reading a job's transcript"):
        last = await sub.hub.transcript(sub.job_id, -1)
    return bool(last) and last[-1].final and last[-1].seq < from_seq
