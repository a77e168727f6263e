"""What the Manage pages' forms share: who is acting, the audit record, reading a form,
answering with the page again (error, status and the values as sent) or a redirect.

A page that shows a form takes a ``Shown``: ``FRESH`` for the page as stored, or a refusal
(``Shown.refused``) so the form comes back as it was sent with the reason above it. A
handler that acts on one user or group is decorated with ``acting_on``, which loads it (or
answers 404) and passes it in with the signed-in administrator.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kuwa.accounts import UserInfo
from kuwa.errors import KuwaError, NotFoundError
from kuwa.web.core import Handler, client_ip, current_user, render, web_state
from kuwa.web.session import flash

T = TypeVar("T")
V = TypeVar("V")
Acting = Callable[[Request, UserInfo, T], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Shown(Generic[V]):
    """What a page shows with its form: an error above it, the answer's status, and the
    values as sent (None: the stored ones)."""

    error: str = ""
    status: int = 200
    values: V | None = None

    @classmethod
    def refused(cls, exc: KuwaError, values: V | None = None) -> Shown[V]:
        """The form refused for ``exc``, its message as a sentence."""
        return cls(sentence(exc.message), form_status(exc), values)


FRESH: Shown[Any] = Shown()
"""A page as stored: no error, 200."""


async def admin_of(request: Request) -> UserInfo:
    """The signed-in administrator (``page(MANAGE)`` let only them through)."""
    user = await current_user(request)
    assert user is not None  # page() let only signed-in managers through
    return user


async def audit(
    request: Request, admin: UserInfo, action: str, *, target: str = "", detail: str = ""
) -> None:
    store = web_state(request).store
    await run_in_threadpool(
        lambda: store.audit.record(
            action,
            user_id=admin.id,
            actor=admin.email,
            target=target,
            detail=detail,
            ip=client_ip(request),
        )
    )


def drop_cached(request: Request) -> None:
    """Drop the gateway's cached permissions and models: users, groups or models changed."""
    web_state(request).on_user_changed()


def checked(form: FormData, name: str) -> bool:
    return str(form.get(name, "")).lower() in ("on", "yes", "1", "true")


def text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return default if value is None else str(value).strip()


def typed(form: FormData, name: str) -> str:
    """A field as typed (line ends as ``\\n``); "" when it is missing or a file."""
    value = form.get(name)
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


def sentence(message: str) -> str:
    """An error message as a sentence for a page ("the name must…" -> "The name must….")."""
    message = message.strip()
    if not message:
        return "Something went wrong."
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def form_status(exc: KuwaError) -> int:
    """The status for a form answer: a group named in a form that does not exist is a bad
    form (400), not a missing page."""
    return 400 if isinstance(exc, NotFoundError) else exc.status


def page_number(raw: str | None) -> int:
    try:
        return max(1, int(raw or "1"))
    except ValueError:
        return 1


async def not_found(request: Request, what: str) -> Response:
    return await render(
        request, "error.html", status_code=404, status=404, message=f"There is no such {what}."
    )


def redirect(request: Request, path: str, message: str) -> Response:
    """Back to a page (303), with ``message`` shown there once."""
    flash(request, message)
    return RedirectResponse(path, status_code=303)


def acting_on(
    what: str, load: Callable[[Request], Awaitable[T | None]]
) -> Callable[[Acting[T]], Handler]:
    """Decorate a handler of (request, admin, the ``what`` it acts on): ``load`` finds that
    in the request's path, and a 404 page answers when there is none."""

    def decorate(handler: Acting[T]) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: Request) -> Response:
            admin = await admin_of(request)
            target = await load(request)
            if target is None:
                return await not_found(request, what)
            return await handler(request, admin, target)

        return wrapper

    return decorate
