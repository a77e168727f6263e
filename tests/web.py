"""Helpers for web tests: a cookie-keeping browser-like client and direct database access."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from kuwa.accounts import Store, UserInfo, close_database, open_database
from kuwa.web.security import CSRF_COOKIE, SESSION_COOKIE
from tests.stack import Stack

PASSWORD = "correct horse battery"
__all__ = ["CSRF_COOKIE", "PASSWORD", "SESSION_COOKIE", "Browser", "make_user", "store_of"]


class Browser:
    """An httpx client that keeps cookies, asks for HTML and fills in CSRF tokens."""

    def __init__(
        self, base_url: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> None:
        self.base_url = base_url
        self.http = httpx.Client(
            base_url=base_url,
            follow_redirects=False,
            headers={"accept": "text/html", **(headers or {})},
            timeout=30,
            **kwargs,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def csrf(self) -> str:
        token = self.http.cookies.get(CSRF_COOKIE)
        for page in ("/login", "/password"):  # a signed-in browser is sent on from /login
            if token is None:
                self.get(page)
                token = self.http.cookies.get(CSRF_COOKIE)
        assert token, "the login page set no CSRF cookie"
        return token

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrftoken", self.csrf())
        return self.http.post(path, data=form, **kwargs)

    def open_link(self, link: str) -> httpx.Response:
        """Follow a mailed link as a person does: open it (changes nothing), press its button."""
        path = link.removeprefix(self.base_url)
        page = self.get(path)
        assert page.status_code == 200, page.text
        code = re.search(r'name="code" value="([^"]*)"', page.text)
        assert code is not None, page.text
        return self.post(path.split("?", 1)[0], {"code": code.group(1)})

    def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return self.post("/login", {"email": email, "password": password})

    def signed_in(self) -> bool:
        r = self.get("/password")
        return r.status_code == 200


@contextmanager
def store_of(stack: Stack) -> Iterator[Store]:
    settings = stack.settings()
    db = open_database(settings)
    try:
        yield Store.over(db, settings.load_secret_key())
    finally:
        close_database(db)


def make_user(
    stack: Stack,
    email: str,
    *,
    password: str = PASSWORD,
    group: str | None = None,
    permissions: Iterable[str] | None = None,
    admin: bool = False,
) -> UserInfo:
    """A user; with ``permissions``, in a group of their own holding exactly those."""
    with store_of(stack) as store:
        if permissions is not None:
            group = "only-" + re.sub(r"[^a-z0-9]+", "-", email.lower())
            store.groups.create(group, permissions=permissions)
        return store.accounts.create_user(
            email, "Web Tester", password, group=group, is_admin=admin
        )
