"""Rule-based control around a backend: the Modelfile, input rules, bounds, output filters.

Before a job reaches the backend: the model's Modelfile (``--modelfile``, ``--system-prompt``)
with the job's own (a bot's) on top shapes the messages and fills unset parameters; input
rules may block, warn or overwrite; parameter bounds clamp; long histories are trimmed. While
it streams: output rules filter the text, so a blocked phrase never reaches the client.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kuwa.executors.modelfile import Modelfile, ModelfileError
from kuwa.executors.rules import OutputFilter, Rules
from kuwa.schemas import Job, Message
from kuwa.settings import Settings


class Blocked(Exception):
    """A rule refused the job or its answer; ``message`` is shown to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Control:
    modelfile: Modelfile | None
    rules: Rules

    @classmethod
    def from_settings(cls, settings: Settings) -> Control:
        """Load ``--modelfile``, ``--system-prompt`` and ``--rules`` (errors name the file)."""
        modelfile = Modelfile.load(settings.modelfile) if settings.modelfile else None
        if settings.system_prompt:
            extra = Modelfile(system=settings.system_prompt)
            modelfile = modelfile.merge(extra) if modelfile else extra
        rules = Rules.load(settings.rules) if settings.rules else Rules.empty()
        return cls(modelfile, rules)

    @property
    def template(self) -> str | None:
        return self.modelfile.template if self.modelfile else None

    def prepare(self, job: Job, count_tokens: Callable[[Sequence[Message]], int]) -> Job:
        """The job as the backend should see it; raises :class:`Blocked`."""
        modelfile = self.modelfile
        if job.modelfile:
            try:
                bot = Modelfile.parse(job.modelfile)
            except ModelfileError as exc:
                raise Blocked(f"The bot's Modelfile is invalid: {exc}") from None
            modelfile = modelfile.merge(bot) if modelfile else bot
        decision = self.rules.check_input(job.messages)
        if decision.blocked is not None:
            raise Blocked(decision.blocked)
        messages = tuple(decision.messages)
        params = job.params
        if modelfile is None and job.passages:
            modelfile = Modelfile()  # the default PASSAGES-TEMPLATE
        if modelfile is not None:
            messages = modelfile.apply(messages, job.passages, job.language)
            params = modelfile.generation_params(params)
        params = self.rules.bound(params)
        messages = self.rules.trim(messages, count_tokens)
        template = modelfile.template if modelfile is not None else None
        return dataclasses.replace(job, messages=messages, params=params, chat_template=template)

    def output_filter(self) -> OutputFilter | None:
        return self.rules.output_filter() if self.rules.output else None

    def counters(self) -> dict[str, int]:
        return self.rules.counters()
