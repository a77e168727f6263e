"""Turning chat messages into prompt token ids that fit the model's context window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jinja2

from kuwa.executors.base import BackendError, PromptError, PromptTooLongError
from kuwa.schemas import Message

MIN_ANSWER_TOKENS = 1


class PromptBuilder:
    """Applies the tokenizer's chat template; trims the oldest history when it is too long.

    System messages and the last message are always kept; earlier turns are dropped, oldest
    first, until the prompt leaves room for at least one answer token. A last message (or
    system prompt) that alone is too long is a :class:`PromptTooLongError` (the API's 400
    ``context_length_exceeded``), never a request the engine refuses; messages the chat
    template refuses (``raise_exception`` in it) are a :class:`PromptError` (400).
    """

    def __init__(self, tokenizer: Any, max_len: int) -> None:
        self.tokenizer = tokenizer
        self.max_len = max_len

    def encode(self, messages: Sequence[Message], template: str | None = None) -> list[int]:
        """Token ids of the chat, with ``template`` (a Modelfile's TEMPLATE) if given."""
        kept = list(messages)
        while True:
            ids = self._encode(kept, template)
            if len(ids) + MIN_ANSWER_TOKENS <= self.max_len:
                return ids
            droppable = [i for i, m in enumerate(kept[:-1]) if m.role != "system"]
            if not droppable:
                raise PromptTooLongError(
                    f"The prompt is {len(ids)} tokens long; this model accepts at most "
                    f"{self.max_len - MIN_ANSWER_TOKENS}. Shorten the message."
                )
            del kept[droppable[0]]

    def count(self, messages: Sequence[Message]) -> int:
        """Prompt tokens of the messages as they are (no trimming)."""
        return len(self._encode(messages))

    def room_for(self, prompt_tokens: int) -> int:
        return max(self.max_len - prompt_tokens, MIN_ANSWER_TOKENS)

    def _encode(self, messages: Sequence[Message], template: str | None = None) -> list[int]:
        dicts = [m.to_dict() for m in messages]
        if template or getattr(self.tokenizer, "chat_template", None):
            extra = {"chat_template": template} if template else {}
            try:
                ids = self.tokenizer.apply_chat_template(
                    dicts, tokenize=True, add_generation_prompt=True, **extra
                )
            except jinja2.TemplateSyntaxError as exc:
                source = "The Modelfile's TEMPLATE" if template else "The model's chat template"
                raise BackendError(f"{source} is not a valid Jinja template: {exc}") from None
            except jinja2.TemplateError as exc:  # e.g. raise_exception("roles must alternate")
                raise PromptError(
                    f"The model's chat template refused the messages: {exc}"
                ) from None
            if not isinstance(ids, list):  # a BatchEncoding in newer transformers
                ids = ids["input_ids"]
            return list(ids)
        text = "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"
        return list(self.tokenizer.encode(text))
