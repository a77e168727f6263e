"""Executor side of a job's stream: numbered, coalesced chunk messages over pub/sub."""

from __future__ import annotations

import asyncio
import contextlib
from importlib import resources

import redis.asyncio as aioredis

from kuwa import keys
from kuwa.schemas import Chunk, Usage

_PUBLISH = resources.files("kuwa.broker").joinpath("publish.lua").read_text()


class ChunkPublisher:
    """Streams one job's output.

    :meth:`write` never waits: text is buffered and a flusher task sends it. The first
    text goes out at once; after each message the flusher waits ``interval`` seconds, so
    tokens that arrive faster than that share one message. :meth:`close` sends what is left
    with the finish reason and usage, and returns once everything is published.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        job_id: str,
        *,
        interval: float = 0.003,
        transcript_ttl: int = 3600,
        transcript_max: int = 20000,
        start_seq: int = 0,
    ) -> None:
        self._script = redis.register_script(_PUBLISH)
        self._transcript = keys.job_transcript(job_id)
        self._channel = keys.job_channel(job_id)
        self._ttl = transcript_ttl
        self._max = transcript_max
        self._interval = interval
        self._buffer: list[str] = []
        self._wake = asyncio.Event()
        self._final: Chunk | None = None
        self._seq = start_seq
        self._task = asyncio.create_task(self._flush_loop(), name=f"publish-{job_id}")
        self.chars = 0

    @property
    def sent(self) -> int:
        """Chunk messages published so far."""
        return self._seq

    def write(self, text: str) -> None:
        if text:
            self._buffer.append(text)
            self.chars += len(text)
            self._wake.set()

    async def close(
        self,
        finish_reason: str,
        usage: Usage | None = None,
        error: dict[str, str] | None = None,
    ) -> None:
        """Publish the rest of the text and the final chunk, then stop the flusher."""
        self._final = Chunk(-1, "", finish_reason, usage, error)
        self._wake.set()
        await self._task

    async def abort(self) -> None:
        """Stop without sending anything more (the job's readers are gone)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            text = "".join(self._buffer)
            self._buffer.clear()
            final = self._final
            if final is not None:
                await self._send(
                    Chunk(self._seq, text, final.finish_reason, final.usage, final.error)
                )
                return
            if text:
                await self._send(Chunk(self._seq, text))
                if self._interval:
                    await asyncio.sleep(self._interval)

    async def _send(self, chunk: Chunk) -> None:
        await self._script(
            keys=[self._transcript],
            args=[self._channel, chunk.encode(), self._ttl, self._max],
        )
        self._seq += 1
