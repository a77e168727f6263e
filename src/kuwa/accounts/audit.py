"""The audit log: sign-ins, failures, permission and token changes, with the client address."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import peewee

from kuwa.accounts.models import AuditEvent, utcnow
from kuwa.accounts.repo import Repo, aware, db_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: dt.datetime
    user_id: int | None
    actor: str
    action: str
    target: str
    detail: str
    ip: str
    ok: bool


class Audit(Repo):
    def record(
        self,
        action: str,
        *,
        user_id: int | None = None,
        actor: str = "",
        target: str = "",
        detail: str = "",
        ip: str = "",
        ok: bool = True,
    ) -> None:
        """Append one event; a failure to write is logged, never raised."""
        try:
            self._q(
                AuditEvent.insert(
                    at=utcnow(),
                    user=user_id,
                    actor=actor[:254],
                    action=action[:64],
                    target=target[:254],
                    detail=detail[:2000],
                    ip=ip[:64],
                    ok=ok,
                )
            ).execute()
        except peewee.PeeweeException as exc:
            log.warning("could not write audit event %s: %s", action, exc)

    def query(
        self,
        *,
        action: str = "",
        actor: str = "",
        ip: str = "",
        ok: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        query = AuditEvent.select()
        if action:
            query = query.where(AuditEvent.action == action)
        if actor:
            query = query.where(peewee.fn.LOWER(AuditEvent.actor).contains(actor.lower()))
        if ip:
            query = query.where(AuditEvent.ip == ip)
        if ok is not None:
            query = query.where(AuditEvent.ok == ok)
        with db_errors("reading the audit log"):
            rows = self._rows(
                query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                .limit(limit)
                .offset(offset)
            )
        return [_entry(row) for row in rows]

    def actions(self) -> list[str]:
        with db_errors("reading the audit log"):
            return [a for (a,) in self._q(AuditEvent.select(AuditEvent.action).distinct().tuples())]


def _entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=int(row["id"]),
        at=aware(row["at"]),
        user_id=row["user"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        detail=row["detail"],
        ip=row["ip"],
        ok=bool(row["ok"]),
    )
