"""The deterministic debug backend: answers with the last user message, token by token.

Transforms (``--debug-transform``): ``echo`` (unchanged), ``reverse``, ``upper``, and
``history``, which answers with the whole conversation it was given (``role: text | …``, to
test what a model sees in a multi-turn chat). ``embed`` makes it an embedding model instead
(it refuses chats, as the embeddings backend does): a text's vector counts its tokens, each
hashed into one of :data:`EMBED_DIM` slots, scaled to length 1, so texts that share words
are near. Tokens are
ASCII words (with their leading spaces) and single other characters (CJK, emoji, marks), so
usage figures are stable. ``max_tokens`` and ``stop`` are honoured. A last user message that
starts with ``/debug error`` streams the rest of the message, then fails (for testing error
paths).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import Sequence
from typing import ClassVar

from kuwa.executors.base import (
    Backend,
    BackendError,
    Completion,
    Embeddings,
    Emit,
)
from kuwa.executors.stops import held_back, stop_index
from kuwa.schemas import Job, JobKind, Message, Usage
from kuwa.schemas.embedding import pack_floats

_TOKEN = re.compile(r"\s*[A-Za-z0-9_']+|\s*[^\sA-Za-z0-9_']|\s+", re.DOTALL)
ERROR_COMMAND = "/debug error"
TRANSFORMS = {
    "echo": lambda text: text,
    "reverse": lambda text: text[::-1],
    "upper": lambda text: text.upper(),
    "history": lambda text: text,  # the conversation; see DebugBackend.generate
}
EMBED = "embed"  # the transform that makes an embedding model
EMBED_DIM = 64


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


class DebugBackend(Backend):
    name: ClassVar[str] = "debug"

    async def start(self) -> None:
        if self.settings.debug_transform not in (*TRANSFORMS, EMBED):
            raise BackendError(
                f"unknown debug transform {self.settings.debug_transform!r}; "
                f"use one of {', '.join((*TRANSFORMS, EMBED))}"
            )
        self.model = f"debug-{self.settings.debug_transform}"

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return sum(len(tokenize(m.content)) for m in messages)

    def job_kinds(self) -> tuple[str, ...]:
        embeds = self.settings.debug_transform == EMBED
        return (JobKind.EMBED.value,) if embeds else (JobKind.CHAT.value,)

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        if self.settings.debug_transform != EMBED:
            return await super().embed(texts)
        rows = [hashed_vector(text) for text in texts]
        return Embeddings(pack_floats(rows), sum(len(tokenize(t)) for t in texts))

    async def generate(self, job: Job, emit: Emit) -> Completion:
        if self.settings.debug_transform == EMBED:
            self.refuse_chat()
        prompt = next((m.content for m in reversed(job.messages) if m.role == "user"), "")
        fail = prompt.startswith(ERROR_COMMAND)
        if fail:
            prompt = prompt[len(ERROR_COMMAND) :].lstrip()
        answer = TRANSFORMS[self.settings.debug_transform](prompt)
        if self.settings.debug_transform == "history":
            answer = " | ".join(f"{m.role}: {m.content}" for m in job.messages)
        tokens = tokenize(answer)
        # (an echo's answer is its prompt: tokenized once, it was 15 % of a 256-job burst)
        prompt_tokens = sum(
            len(tokens) if m.content == answer else len(tokenize(m.content)) for m in job.messages
        )
        limit = job.params.max_tokens
        finish = "stop"
        if limit is not None and len(tokens) > limit:
            tokens, finish = tokens[:limit], "length"
        delay = self.settings.debug_delay
        stops = job.params.stop
        text = ""  # everything generated so far
        sent = 0  # how much of it was emitted (text that may start a stop string waits)
        count = 0
        for token in tokens:
            if delay:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # like a real engine: other jobs run between tokens
            text += token
            count += 1
            cut = stop_index(text, stops, start=max(0, sent - 1))
            if cut is not None:
                if cut > sent:
                    emit(text[sent:cut])
                sent = len(text)
                break
            safe = len(text) - held_back(text, stops)
            if safe > sent:
                emit(text[sent:safe])
                sent = safe
        if sent < len(text):
            emit(text[sent:])
        if fail:
            raise BackendError("the debug backend was asked to fail (/debug error)")
        return Completion(finish, Usage(prompt_tokens, count))


def hashed_vector(text: str) -> list[float]:
    """The ``embed`` transform's unit vector of a text (the zero vector's stand-in is the
    first axis)."""
    vector = [0.0] * EMBED_DIM
    for token in tokenize(text.lower()):
        word = token.strip()
        if word:
            slot = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
            vector[slot % EMBED_DIM] += 1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else [1.0] + [0.0] * (EMBED_DIM - 1)
