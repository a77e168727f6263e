"""Starting a chat job and following its stream, independent of the API dialect."""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from kuwa import keys
from kuwa.broker import Hub, JobQueue, Registry, Subscription, submit
from kuwa.broker.connection import broker_error, redis_errors
from kuwa.broker.limits import UserLimits
from kuwa.errors import (
    ContentBlockedError,
    ContextLengthError,
    InvalidRequestError,
    JobFailedError,
    KuwaError,
    ModelNotFoundError,
    ModelUnavailableError,
    NotFoundError,
    WrongModelTypeError,
)
from kuwa.gateway import instrument
from kuwa.schemas import ChatRequest, Chunk, Job, JobKind, Usage

KNOWN_MODEL_TTL = 5.0


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    finish_reason: str
    usage: Usage


_REFUSED: dict[str, type[InvalidRequestError]] = {
    ContextLengthError.code: ContextLengthError,
    InvalidRequestError.code: InvalidRequestError,
}


def error_of(chunk: Chunk) -> KuwaError:
    """The error a failed job's final chunk stands for."""
    error = chunk.error or {}
    message = error.get("message", "The model failed.")
    if error.get("code") == "blocked":
        return ContentBlockedError(message)
    if error.get("code") == WrongModelTypeError.code:  # a chat to an embedding model, or back
        return WrongModelTypeError(message, param="model")
    refused = _REFUSED.get(error.get("code", ""))
    if refused is not None:  # the executor could not make a prompt of the messages
        return refused(message, param="messages")
    return JobFailedError(message, code=error.get("code", "job_failed"))


class ChatStream:
    """One running job as the gateway sees it. Always :meth:`close` it."""

    def __init__(self, service: ChatService, job: Job, sub: Subscription) -> None:
        self.service = service
        # The job as queued, less its prompt (messages, passages, texts to embed) and the
        # user's provider key: a stream may stay open for minutes; the executor has them.
        self.job = dataclasses.replace(
            job, messages=(), passages=(), inputs=(), modelfile=None, upstream_key=None
        )
        self.sub = sub
        self.created = int(job.created)
        self.finished = False
        self.idle_timeout = service.idle_timeout
        self.claimed = False  # holds a running-job slot in the user's limits
        self.first_at: float | None = None  # when the first chunk with text arrived
        self.error_code: str | None = None  # why the job failed, once it has
        self.closed = False
        self.citations: list[dict[str, Any]] = []  # passages of attached files, numbered

    @property
    def id(self) -> str:
        return self.job.id

    def chunks(self) -> AsyncIterator[Chunk]:
        """Chunks until the final one. A failed job raises :class:`JobFailedError` (or the
        error its final chunk names), Redis failing a :class:`KuwaError` too. The
        subscription's own generator, watched by this stream (no generator of its own)."""
        return self.sub.chunks(idle_timeout=self.idle_timeout, watcher=self)

    # --- what the subscription's generator tells the stream (kuwa.broker.hub.Watcher) ------
    def seen(self, chunk: Chunk) -> None:
        if self.first_at is None and chunk.text:
            self.first_at = instrument.first_token(self.job)
        if chunk.final:
            self.finished = True

    def failure(self, chunk: Chunk) -> Exception:
        return error_of(chunk)

    def broken(self, exc: Exception) -> Exception:
        if isinstance(exc, RedisError):
            exc = broker_error("following the answer", exc)
        if isinstance(exc, KuwaError):
            self.error_code = exc.code or "job_failed"
        return exc

    async def collect(self) -> Answer:
        parts: list[str] = []
        finish, usage = "stop", Usage()
        async for chunk in self.chunks():
            parts.append(chunk.text)
            if chunk.final:
                finish = chunk.finish_reason or "stop"
                usage = chunk.usage or Usage()
        return Answer("".join(parts), finish, usage)

    async def close(self) -> None:
        """Cancel the job unless it finished, and stop listening."""
        if not self.closed:
            self.closed = True
            instrument.chat_closed(self.job.model, self.finished, self.error_code)
        try:
            if not self.finished:
                with contextlib.suppress(RedisError, OSError):
                    await self.service.queue.cancel(self.job.id)
        finally:
            await self.sub.close()
            if self.claimed:
                await self.service._release(self.job)


class ChatService:
    def __init__(
        self,
        hub: Hub,
        queue: JobQueue,
        registry: Registry,
        *,
        idle_timeout: float,
        limits: UserLimits | None = None,
    ) -> None:
        self.hub = hub
        self.queue = queue
        self.registry = registry
        self.idle_timeout = idle_timeout
        self.limits = limits
        self._known: dict[str, float] = {}
        self._backends: dict[str, tuple[float, str]] = {}  # code -> (expires, backend)

    async def start(
        self,
        request: ChatRequest,
        user_id: int | None,
        upstream_key: str | None = None,
        *,
        max_jobs: int | None = None,
        per_minute: int | None = None,
        idle_timeout: float | None = None,
        modelfile: str | None = None,
        check_model: bool = True,
        group: str | None = None,
    ) -> ChatStream:
        """Start a chat job (see :meth:`launch`).

        ``upstream_key`` is the user's own provider key for models served through the openai
        backend; it travels only in the queued job, never in logs or the job's state.
        ``max_jobs``/``per_minute`` override the service's limits for this user (their
        group's); ``idle_timeout`` and ``modelfile`` come from the model's catalog entry;
        ``group`` (the user's) is kept in the job for the usage statistics."""
        job = Job(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            model=request.model,
            messages=request.messages,
            params=request.params,
            user_id=user_id,
            created=time.time(),
            upstream_key=upstream_key or None,
            modelfile=modelfile or None,
            group=group,
            passages=request.passages,
            language=request.language,
            stream=request.stream,
        )
        return await self.launch(
            job,
            max_jobs=max_jobs,
            per_minute=per_minute,
            idle_timeout=idle_timeout,
            check_model=check_model,
        )

    @instrument.counts_chat_starts
    async def launch(
        self,
        job: Job,
        *,
        max_jobs: int | None = None,
        per_minute: int | None = None,
        idle_timeout: float | None = None,
        check_model: bool = True,
    ) -> ChatStream:
        """Admit the job within its user's limits, subscribe to its channel, then enqueue it
        (in that order). Any kind of job: a chat, or an embedding job."""
        if check_model:
            await self._check_model(job.model)
        claimed = False
        if self.limits is not None and job.user_id is not None:
            claimed = await self.limits.admit(
                str(job.user_id), job.id, max_jobs=max_jobs, per_minute=per_minute
            )

        async def release() -> None:
            if claimed:
                await self._release(job)

        try:
            sub = await submit(self.hub, self.queue, job)
        except ModelUnavailableError:
            await release()
            if await self._starting(job.model):
                raise ModelUnavailableError(
                    f"The model '{job.model}' is starting (loading its weights); "
                    "try again in a moment.",
                    code="model_starting",
                    headers={"Retry-After": "5"},
                ) from None
            raise
        except BaseException:
            await release()
            raise
        stream = ChatStream(self, job, sub)
        stream.claimed = claimed
        if idle_timeout is not None:
            stream.idle_timeout = idle_timeout
        return stream

    async def _release(self, job: Job) -> None:
        if self.limits is not None and job.user_id is not None:
            with contextlib.suppress(KuwaError):
                await self.limits.release(str(job.user_id), job.id)

    async def follow(self, job_id: str, user_id: int) -> tuple[Subscription, dict[str, str]]:
        """Subscribe to one of the user's jobs with replay (a late or reconnecting reader).

        Unknown, expired and other users' jobs are all 404 alike. Following never cancels
        the job: only the request that started it does."""
        return await self._follow(job_id, str(user_id))

    async def follow_any(self, job_id: str) -> tuple[Subscription, dict[str, str]]:
        """:meth:`follow` for a caller that checked access itself (a room's job, which every
        member of the room may watch)."""
        return await self._follow(job_id, None)

    async def _follow(self, job_id: str, owner: str | None) -> tuple[Subscription, dict[str, str]]:
        state = await self.queue.state(job_id) if keys.valid_job_id(job_id) else {}
        if not state or (owner is not None and state.get("owner") != owner):
            raise NotFoundError(
                f"There is no job '{job_id}' of yours (jobs are kept for a limited time).",
                param="job_id",
            )
        with redis_errors("subscribing to a job"):
            sub = await self.hub.subscribe(job_id, replay=True)
        return sub, state

    async def _starting(self, code: str) -> bool:
        with redis_errors("listing executors"):
            executors = await self.registry.executors()
        return any(code in e.access_codes and e.state == "starting" for e in executors)

    async def _check_model(self, code: str) -> None:
        now = time.monotonic()
        if self._known.get(code, 0.0) > now:
            return
        known = False
        if keys.valid_access_code(code):
            with redis_errors("looking up a model"):
                known = await self.registry.is_known(code)
        if not known:
            raise ModelNotFoundError(
                f"The model '{code}' does not exist; GET /v1/models lists the models you can use.",
                param="model",
            )
        self._known[code] = now + KNOWN_MODEL_TTL

    async def backend_of(self, code: str) -> str:
        """The backend that the model's executors run (``""`` when unknown), cached like
        :meth:`_check_model`'s answer: a relayed request must not cost a lookup."""
        now = time.monotonic()
        hit = self._backends.get(code)
        if hit is not None and hit[0] > now:
            return hit[1]
        with redis_errors("looking up a model"):
            meta = await self.registry.model_meta(code)
        backend = str(meta.get("backend", "")) if meta else ""
        self._backends[code] = (now + KNOWN_MODEL_TTL, backend)
        return backend

    async def live_models(self, kind: JobKind | None = None) -> list[tuple[str, dict[str, object]]]:
        """Access codes with a live executor, and what it says about them; with ``kind``, only
        those that serve that kind of job (chat models, or embedding models)."""
        with redis_errors("listing models"):
            known = await self.registry.known_models()
            counts = await self.registry.live_counts(sorted(known))
        return [
            (code, known[code])
            for code, n in counts.items()
            if n > 0 and (kind is None or serves(known[code], kind))
        ]


def serves(meta: dict[str, object], kind: JobKind) -> bool:
    """Does the model its registry entry ``meta`` describes serve this kind of job? (Executors
    from before job kinds say nothing: they chat.)"""
    kinds = meta.get("kinds")
    return kind.value in (kinds if isinstance(kinds, list) else [JobKind.CHAT.value])
