"""The deterministic debug backend: answers with the last user message, token by token.

Transforms (``--debug-transform``): ``echo`` (unchanged), ``reverse``, ``upper``. Tokens are
ASCII words (with their leading spaces) and single other characters (CJK, emoji, marks), so
usage figures are stable. ``max_tokens`` and ``stop`` are honoured. A last user message that
starts with ``/debug error`` streams the rest of the message, then fails (for testing error
paths).
"""

from __future__ import annotations

import asyncio
import re
from typing import ClassVar

from kuwa.executors.base import Backend, BackendError, Completion, Emit
from kuwa.schemas import Job, Usage

_TOKEN = re.compile(r"\s*[A-Za-z0-9_']+|\s*[^\sA-Za-z0-9_']|\s+", re.DOTALL)
ERROR_COMMAND = "/debug error"
TRANSFORMS = {
    "echo": lambda text: text,
    "reverse": lambda text: text[::-1],
    "upper": lambda text: text.upper(),
}


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


class DebugBackend(Backend):
    name: ClassVar[str] = "debug"

    async def start(self) -> None:
        if self.settings.debug_transform not in TRANSFORMS:
            raise BackendError(
                f"unknown debug transform {self.settings.debug_transform!r}; "
                f"use one of {', '.join(TRANSFORMS)}"
            )
        self.model = f"debug-{self.settings.debug_transform}"

    async def generate(self, job: Job, emit: Emit) -> Completion:
        prompt = next((m.content for m in reversed(job.messages) if m.role == "user"), "")
        fail = prompt.startswith(ERROR_COMMAND)
        if fail:
            prompt = prompt[len(ERROR_COMMAND) :].lstrip()
        answer = TRANSFORMS[self.settings.debug_transform](prompt)
        tokens = tokenize(answer)
        prompt_tokens = sum(len(tokenize(m.content)) for m in job.messages)
        limit = job.params.max_tokens
        finish = "stop"
        if limit is not None and len(tokens) > limit:
            tokens, finish = tokens[:limit], "length"
        delay = self.settings.debug_delay
        produced = ""
        count = 0
        for token in tokens:
            if delay:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # like a real engine: other jobs run between tokens
            candidate = produced + token
            cut = _stop_index(candidate, job.params.stop)
            if cut is not None:
                if cut > len(produced):
                    emit(candidate[len(produced) : cut])
                break
            emit(token)
            produced = candidate
            count += 1
        if fail:
            raise BackendError("the debug backend was asked to fail (/debug error)")
        return Completion(finish, Usage(prompt_tokens, count))


def _stop_index(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None
