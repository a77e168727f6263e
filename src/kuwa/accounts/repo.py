"""What every accounts service shares: its database, query binding and error translation."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import peewee

from kuwa.errors import ConflictError, KuwaError

log = logging.getLogger(__name__)


class Repo:
    """Base of the accounts services: each binds its queries to its own database."""

    def __init__(self, db: peewee.Database) -> None:
        self._db = db

    @property
    def db(self) -> peewee.Database:
        return self._db

    def _q(self, query: Any) -> Any:
        """Bind a query to this service's database (not whichever was opened last)."""
        return query.bind(self._db)

    def _rows(self, query: Any) -> list[dict[str, Any]]:
        return list(self._q(query.dicts()))


def aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC)


def aware_or_none(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else aware(value)


@contextmanager
def db_errors(action: str) -> Iterator[None]:
    """Translate peewee errors into kuwa.errors; ours pass through unchanged."""
    try:
        yield
    except KuwaError:
        raise
    except peewee.IntegrityError as exc:
        raise ConflictError(f"{action} clashes with existing data: {exc}") from exc
    except peewee.PeeweeException as exc:
        raise KuwaError(
            f"database error while {action}: {type(exc).__name__}: {exc}", code="database_error"
        ) from exc
