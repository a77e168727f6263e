"""What each route declares about itself: the struct its body is, what it answers.

A handler is decorated with :func:`endpoint`. With ``body=Struct`` the decorator reads the
request's JSON body and decodes it into the struct (types, bounds and required fields
checked by msgspec; a misfit is a 400 ``invalid_request`` naming the field in ``param``) and
passes it to the handler after the request. The OpenAPI document (:mod:`.openapi`) reads the
same declaration for the route's request body, responses and parameters, so the validation
and the document come from one place. A route without a declaration fails the document's
build; ``tests/test_openapi.py`` checks every route the app serves.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import msgspec.inspect
from starlette.requests import Request
from starlette.responses import Response

from kuwa.gateway.http import read_body, schema_error
from kuwa.schemas import SchemaError
from kuwa.schemas.decode import convert as convert_struct
from kuwa.schemas.decode import decode as decode_struct

ATTR = "kuwa_endpoint"
# Who may use a page (kuwa.web.core.page records it on the handler): PUBLIC, SIGNED_IN or a
# permission's name. Here, a floor below the web pages, so the document can read it.
ACCESS_ATTR = "kuwa_access"
PUBLIC = "public"
SIGNED_IN = "signed_in"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
HTML = "text/html"
SSE = "text/event-stream"
MAX_BODY = 1024 * 1024

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A route's declaration (see :func:`endpoint`)."""

    summary: str = ""
    body: Any = None
    form: Any = None
    upload: tuple[str, ...] = ()
    query: Any = None
    answer: Any = None
    status: int = 200
    media: str = JSON
    events: Mapping[str, Any] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    redirect: int = 0


def endpoint(
    summary: str = "",
    *,
    body: Any = None,
    limit: int = MAX_BODY,
    decode: bool = True,
    form: Any = None,
    upload: tuple[str, ...] = (),
    query: Any = None,
    answer: Any = None,
    status: int = 200,
    media: str = JSON,
    events: Mapping[str, Any] | None = None,
    errors: tuple[int, ...] = (),
    redirect: bool | int = False,
) -> Callable[[Callable[..., Awaitable[Response]]], Handler]:
    """Declare a route; ``summary`` defaults to the first line of the handler's docstring.

    - ``body``: the JSON body's struct, decoded (at most ``limit`` bytes) and passed to the
      handler as its argument after the request (and after any the wrappers inside add);
      ``decode=False``: the handler decodes it itself, through the same struct (the chat
      endpoints, whose limit is a setting).
    - ``form``: the struct of a form the handler reads (``application/x-www-form-urlencoded``,
      or ``multipart/form-data`` with a ``bytes`` field).
    - ``upload``: media types of a raw body (a file) the handler reads itself.
    - ``query``: the struct of its query parameters, checked before the handler runs (a
      parameter that does not fit, or one given twice that is not a list, is a 400 naming
      it; the handler reads ``request.query_params`` as before).
    - ``answer``: the JSON it answers with ``status`` (a struct, ``list[Struct]``, a JSON
      Schema dict); else ``media`` says what it answers (a page, a download, ``SSE`` with
      named ``events``). ``redirect``: it answers with a redirect (True: ``303 See Other``,
      a form post's; or the status), a form post with its page again when refused.
    - ``errors``: the error statuses it answers besides those every route may.
    """

    def decorate(handler: Callable[..., Awaitable[Response]]) -> Handler:
        doc = (handler.__doc__ or "").strip()
        declared = Endpoint(
            summary=summary or (doc.splitlines()[0] if doc else ""),
            body=body,
            form=form,
            upload=upload,
            query=query,
            answer=answer,
            status=status,
            media=media,
            events=events or {},
            errors=errors,
            redirect=303 if redirect is True else int(redirect),
        )
        if body is None or not decode:
            inner: Callable[..., Awaitable[Response]] = handler
        else:

            @functools.wraps(handler)
            async def inner(request: Request, *args: Any) -> Response:
                raw = await read_body(request, limit)
                try:
                    value = decode_struct(raw, body, messages=getattr(body, "MESSAGES", None))
                except SchemaError as exc:
                    raise schema_error(exc) from None
                return await handler(request, *args, value)

        if query is None:
            wrapper = inner
        else:

            @functools.wraps(inner)
            async def wrapper(request: Request, *args: Any) -> Response:
                check_query(request, query)
                return await inner(request, *args)

        setattr(wrapper, ATTR, declared)
        return wrapper

    return decorate


def check_query(request: Request, struct: Any) -> None:
    """The request's query parameters fit ``struct`` (unknown ones are ignored), else a 400
    ``invalid_request`` naming the parameter."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    lists = {f.encode_name for f in info.fields if isinstance(f.type, msgspec.inspect.ListType)}
    values: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if name in lists:
            values.setdefault(name, []).append(value)
        elif name in values:
            raise schema_error(SchemaError(f"'{name}' is given more than once.", name))
        else:
            values[name] = value
    try:
        convert_struct(values, struct)  # every query field is a string (or a list of them)
    except SchemaError as exc:
        raise schema_error(exc) from None


def declared(handler: object) -> Endpoint | None:
    """The declaration of a route's endpoint (None: it has none)."""
    found = getattr(handler, ATTR, None)
    return found if isinstance(found, Endpoint) else None
