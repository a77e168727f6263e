"""Single-use codes sent by mail: email verification, password reset, email change.

Only a SHA-256 digest of each code is stored; a code works once and until it expires.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from kuwa.accounts.models import OneTimeCode, utcnow
from kuwa.accounts.repo import Repo, db_errors

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 -- a purpose name, not a secret
CHANGE_EMAIL = "change_email"
LIFETIMES = {
    VERIFY_EMAIL: dt.timedelta(days=2),
    RESET_PASSWORD: dt.timedelta(hours=1),
    CHANGE_EMAIL: dt.timedelta(days=1),
}


@dataclass(frozen=True, slots=True)
class Redeemed:
    user_id: int
    data: str


class Codes(Repo):
    def issue(self, user_id: int, purpose: str, data: str = "") -> str:
        """A new code; earlier unused codes of the same purpose stop working."""
        code = secrets.token_urlsafe(24)
        now = utcnow()
        with db_errors("issuing a code"), self._db.atomic():
            self._q(
                OneTimeCode.update(used_at=now).where(
                    (OneTimeCode.user == user_id)
                    & (OneTimeCode.purpose == purpose)
                    & OneTimeCode.used_at.is_null()
                )
            ).execute()
            self._q(
                OneTimeCode.insert(
                    user=user_id,
                    purpose=purpose,
                    digest=_digest(code),
                    data=data,
                    expires_at=now + LIFETIMES[purpose],
                )
            ).execute()
        return code

    def redeem(self, code: str, purpose: str) -> Redeemed | None:
        """Use up a code: who it was for, or None when unknown, used or expired."""
        if not code or len(code) > 128:
            return None
        now = utcnow()
        with db_errors("checking a code"), self._db.atomic():
            rows = self._rows(
                OneTimeCode.select(OneTimeCode.id, OneTimeCode.user, OneTimeCode.data)
                .where(
                    (OneTimeCode.digest == _digest(code))
                    & (OneTimeCode.purpose == purpose)
                    & OneTimeCode.used_at.is_null()
                    & (OneTimeCode.expires_at > now)
                )
                .limit(1)
            )
            if not rows:
                return None
            taken = self._q(
                OneTimeCode.update(used_at=now).where(
                    (OneTimeCode.id == rows[0]["id"]) & OneTimeCode.used_at.is_null()
                )
            ).execute()
        if not taken:
            return None
        return Redeemed(int(rows[0]["user"]), rows[0]["data"])


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
