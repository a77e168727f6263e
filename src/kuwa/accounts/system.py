"""System settings an admin changes at run time (kept in the database, not the environment)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kuwa.accounts.models import SystemSetting
from kuwa.accounts.repo import Repo, db_errors
from kuwa.errors import InvalidRequestError

REGISTRATION_MODES = ("open", "invite", "closed")
MIN_TRASH_DAYS, MAX_TRASH_DAYS = 1, 3650


@dataclass(frozen=True, slots=True)
class SystemConfig:
    registration: str = "open"  # open, invite (invite code only) or closed
    allowed_domains: tuple[str, ...] = ()  # sign-up only with these email domains (empty: any)
    announcement: str = ""
    terms: str = ""  # terms of service, markdown; empty: none to accept
    terms_version: int = 0  # bumped whenever the terms change: everyone accepts again
    arena_pool: tuple[tuple[str, float], ...] = ()  # models the arena draws from, with weights
    blind_groups: tuple[str, ...] = ()  # groups whose every new chat is a blinded arena battle
    trash_days: int = 30  # deleted rooms and answers stay this many days in the trash

    def domain_allowed(self, email: str) -> bool:
        domain = email.rpartition("@")[2].lower()
        return not self.allowed_domains or domain in self.allowed_domains


class System(Repo):
    def load(self) -> SystemConfig:
        with db_errors("reading system settings"):
            values = dict(self._q(SystemSetting.select().tuples()))
        return SystemConfig(
            registration=values.get("registration", "open"),
            allowed_domains=tuple(d for d in values.get("allowed_domains", "").split(",") if d),
            announcement=values.get("announcement", ""),
            terms=values.get("terms", ""),
            terms_version=int(values.get("terms_version", "0") or 0),
            arena_pool=parse_pool(values.get("arena_pool", "")),
            blind_groups=tuple(g for g in values.get("blind_groups", "").split("\n") if g),
            trash_days=int(values.get("trash_days", "30") or 30),
        )

    def blind(self, group: str | None) -> bool:
        """Does this group use blind mode (every new chat an arena battle)?"""
        return bool(group) and group in self.load().blind_groups

    def update(
        self,
        *,
        registration: str | None = None,
        allowed_domains: str | None = None,
        announcement: str | None = None,
        terms: str | None = None,
        arena_pool: str | None = None,
        blind_groups: Sequence[str] | None = None,
        trash_days: int | None = None,
    ) -> SystemConfig:
        current = self.load()
        values: dict[str, str] = {}
        if registration is not None:
            if registration not in REGISTRATION_MODES:
                raise InvalidRequestError(
                    "registration must be open, invite or closed", param="registration"
                )
            values["registration"] = registration
        if allowed_domains is not None:
            domains = [
                d.strip().lower().lstrip("@") for d in allowed_domains.replace("\n", ",").split(",")
            ]
            values["allowed_domains"] = ",".join(d for d in domains if d)
        if announcement is not None:
            values["announcement"] = announcement.strip()[:4000]
        if terms is not None and terms.strip() != current.terms:
            values["terms"] = terms.strip()[:100_000]
            values["terms_version"] = str(current.terms_version + 1)
        if arena_pool is not None:
            pool = parse_pool(arena_pool)
            values["arena_pool"] = ",".join(f"{code}:{weight:g}" for code, weight in pool)
        if blind_groups is not None:
            # Group names may hold commas, not newlines (one per line).
            names = dict.fromkeys(g.strip() for g in blind_groups if g.strip())
            values["blind_groups"] = "\n".join(names)
        if trash_days is not None:
            if not MIN_TRASH_DAYS <= trash_days <= MAX_TRASH_DAYS:
                raise InvalidRequestError(
                    f"Keep the trash between {MIN_TRASH_DAYS} and {MAX_TRASH_DAYS} days.",
                    param="trash_days",
                )
            values["trash_days"] = str(trash_days)
        with db_errors("saving system settings"), self._db.atomic():
            for key, value in values.items():
                self._q(
                    SystemSetting.insert(key=key, value=value).on_conflict(
                        conflict_target=[SystemSetting.key], update={SystemSetting.value: value}
                    )
                ).execute()
        return self.load()


def parse_pool(text: str) -> tuple[tuple[str, float], ...]:
    """``code:weight, code, …`` (weight 1 when left out) -> ((code, weight), …)."""
    pool: list[tuple[str, float]] = []
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        code, _, weight = item.rpartition(":")  # access codes may contain ':' themselves
        try:
            value = float(weight)
        except ValueError:
            code, value = item, 1.0
        if not code:
            continue
        if value <= 0:
            raise InvalidRequestError("arena pool weights must be more than 0", param="arena_pool")
        pool.append((code.strip(), value))
    return tuple(pool)
