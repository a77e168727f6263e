"""Linked OIDC identities and users' own provider keys (kept Fernet-encrypted)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from kuwa.accounts.models import ExternalIdentity, ProviderKey, utcnow
from kuwa.accounts.repo import Repo, db_errors
from kuwa.errors import InvalidRequestError

PROVIDERS = ("openai", "google", "other")
MAX_KEY_LENGTH = 1024


class Identities(Repo):
    def __init__(self, db: object, fernet: Fernet) -> None:
        super().__init__(db)  # type: ignore[arg-type]
        self._fernet = fernet

    # --- OIDC links ---------------------------------------------------------------------
    def user_for(self, provider: str, subject: str) -> int | None:
        with db_errors("finding a linked account"):
            rows = list(
                self._q(
                    ExternalIdentity.select(ExternalIdentity.user)
                    .where(
                        (ExternalIdentity.provider == provider)
                        & (ExternalIdentity.subject == subject)
                    )
                    .tuples()
                )
            )
        return int(rows[0][0]) if rows else None

    def link(self, user_id: int, provider: str, subject: str) -> None:
        with db_errors("linking an account"):
            self._q(
                ExternalIdentity.insert(
                    user=user_id, provider=provider, subject=subject, created_at=utcnow()
                ).on_conflict_ignore()
            ).execute()

    # --- provider keys ------------------------------------------------------------------
    def set_key(self, user_id: int, provider: str, key: str) -> None:
        """Store (or with an empty ``key`` remove) the user's key for ``provider``."""
        if provider not in PROVIDERS:
            raise InvalidRequestError(
                f"unknown provider {provider!r}; choose from {', '.join(PROVIDERS)}",
                param="provider",
            )
        key = key.strip()
        if len(key) > MAX_KEY_LENGTH or any(ch.isspace() for ch in key):
            raise InvalidRequestError("that does not look like an API key", param="key")
        where = (ProviderKey.user == user_id) & (ProviderKey.provider == provider)
        with db_errors("saving a provider key"), self._db.atomic():
            self._q(ProviderKey.delete().where(where)).execute()
            if key:
                self._q(
                    ProviderKey.insert(
                        user=user_id,
                        provider=provider,
                        encrypted=self._fernet.encrypt(key.encode()).decode(),
                        updated_at=utcnow(),
                    )
                ).execute()

    def get_key(self, user_id: int, provider: str) -> str | None:
        with db_errors("reading a provider key"):
            rows = list(
                self._q(
                    ProviderKey.select(ProviderKey.encrypted)
                    .where((ProviderKey.user == user_id) & (ProviderKey.provider == provider))
                    .tuples()
                )
            )
        if not rows:
            return None
        try:
            return self._fernet.decrypt(rows[0][0].encode()).decode()
        except InvalidToken:
            return None

    def key_providers(self, user_id: int) -> list[str]:
        """Which providers the user has stored a key for (never the keys)."""
        with db_errors("listing provider keys"):
            return [
                p
                for (p,) in self._q(
                    ProviderKey.select(ProviderKey.provider)
                    .where(ProviderKey.user == user_id)
                    .tuples()
                )
            ]
