"""Starting a chat for a signed-in user: API access, model access, their group's limits."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request

from kuwa.accounts import UserInfo
from kuwa.gateway.chat import ChatStream
from kuwa.gateway.files_api import attach_files
from kuwa.gateway.http import UPSTREAM_KEY_HEADER, request_language
from kuwa.gateway.models import require_api_access
from kuwa.gateway.state import GatewayState
from kuwa.schemas import ChatRequest

# Executor backends that use a user's own provider key, and which of the user's keys.
KEYED_BACKENDS = {"openai": "openai"}


async def start_api_chat(
    state: GatewayState, request: Request, chat: ChatRequest, user: UserInfo
) -> ChatStream:
    """A chat started through the API (``/v1``, ``/v1.0``); with files, the stream's
    ``citations`` are the passages its model was given (the default template in the
    language ``Accept-Language`` names first)."""
    require_api_access(user)
    chat, citations = await attach_files(state, chat, user)
    if chat.passages:
        chat = replace(chat, language=request_language(request))
    stream = await start_chat(state, chat, user, request.headers.get(UPSTREAM_KEY_HEADER))
    stream.citations = citations
    return stream


async def start_chat(
    state: GatewayState,
    chat: ChatRequest,
    user: UserInfo,
    upstream_key: str | None = None,
    *,
    bot_modelfile: str | None = None,
) -> ChatStream:
    """``bot_modelfile``: a bot's Modelfile, applied after the model's own (its settings win).
    The request's parameters are clamped to the user's group's bounds."""
    model = await state.models.resolve(user, chat.model)
    chat = replace(chat, params=user.bounds.clamp(chat.params))  # the group's bounds
    modelfile = "\n".join(m for m in (model.modelfile, bot_modelfile) if m) or None
    if not upstream_key:
        upstream_key = await _stored_key(state, user, chat.model)
    return await state.chat.start(
        chat,
        user.id,
        upstream_key,
        max_jobs=user.max_jobs,
        per_minute=user.requests_per_minute,
        idle_timeout=model.idle_timeout,
        modelfile=modelfile,
        check_model=False,
        group=user.group,
    )


async def _stored_key(state: GatewayState, user: UserInfo, code: str) -> str | None:
    """The user's own key for the provider behind ``code``, when its executor uses one."""
    provider = KEYED_BACKENDS.get(await state.chat.backend_of(code))
    if provider is None:
        return None
    return await state.provider_keys.get(state.store, user.id, provider)
