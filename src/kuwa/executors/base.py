"""What an executor backend is: something that turns a job into text, token by token."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, NoReturn

from kuwa.errors import ContextLengthError, InvalidRequestError, WrongModelTypeError
from kuwa.schemas import Job, JobKind, Message, Usage
from kuwa.settings import Settings

Emit = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Completion:
    finish_reason: str  # "stop" or "length"
    usage: Usage


@dataclass(frozen=True, slots=True)
class Embeddings:
    """The vectors of an embedding job's texts: ``rows`` is one vector per text, in order,
    as little-endian float32 (``numpy.ndarray.astype("<f4").tobytes()``); ``tokens`` the
    tokens read."""

    rows: bytes
    tokens: int


class BackendError(Exception):
    """The backend could not produce an answer; the message is shown to the user.

    ``code`` is the error code the job fails with (the API's ``error.code``)."""

    code: ClassVar[str] = "model_error"


class PromptError(BackendError):
    """The messages cannot make a prompt for this model (e.g. its chat template refuses them):
    the request's fault, so the API answers 400, not a model failure."""

    code: ClassVar[str] = InvalidRequestError.code


class UnservedJobError(BackendError):
    """The job asks what this model cannot do: a chat of an embedding model, embeddings of a
    chat model. The request's fault (400 ``wrong_model_type``, ``param`` ``model``)."""

    code: ClassVar[str] = WrongModelTypeError.code


class PromptTooLongError(PromptError):
    """The prompt cannot fit the model's context, even with old turns dropped."""

    code: ClassVar[str] = ContextLengthError.code


class Backend(abc.ABC):
    """A model engine. The runtime owns queues, slots and streaming; a backend only generates.

    :meth:`generate` calls ``emit`` with each piece of text as it is produced and returns
    the finish reason and usage. The runtime cancels the task running it when the job is
    cancelled: a backend must stop promptly and release what it holds (``finally``).
    """

    name: ClassVar[str]

    def __init__(self, settings: Settings, model: str | None = None) -> None:
        self.settings = settings
        self.model = model or self.name

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load the model. Called once before the first job."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release the model. Called once after the last job."""

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens the messages take (for history trimming). Default: ~4 characters a token."""
        return sum(len(m.content) // 4 + 4 for m in messages)

    def stats(self) -> dict[str, float | int]:
        """Engine figures for the heartbeat (e.g. requests the engine is running)."""
        return {}

    def job_kinds(self) -> tuple[str, ...]:
        """The kinds of job it serves (announced with its heartbeat, so the chat page can
        leave out models that do not chat)."""
        return (JobKind.CHAT.value,)

    @abc.abstractmethod
    async def generate(self, job: Job, emit: Emit) -> Completion: ...

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """The texts' vectors, for an embedding job. Only embedding backends make them."""
        raise UnservedJobError(
            "This model is a chat model: it makes no embeddings. Ask an embedding model (one "
            "served with --backend embeddings)."
        )

    def refuse_chat(self) -> NoReturn:
        """What an embedding model's :meth:`generate` does with a chat job."""
        raise UnservedJobError("This model makes embeddings (POST /v1/embeddings); it cannot chat.")
