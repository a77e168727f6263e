"""Groups and their permissions (Kuwa's vocabulary plus one permission per model)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

import peewee

from kuwa.accounts import permissions as perms
from kuwa.accounts.bounds import Bounds, check_bounds
from kuwa.accounts.models import Group, GroupPermission, User, utcnow
from kuwa.accounts.repo import Repo, aware_or_none, db_errors
from kuwa.errors import ConflictError, InvalidRequestError, NotFoundError


@dataclass(frozen=True, slots=True)
class GroupInfo:
    id: int
    name: str
    description: str
    invite_code: str | None
    max_jobs: int | None
    requests_per_minute: int | None
    permissions: frozenset[str] = field(repr=False)
    bounds: Bounds = field(default_factory=Bounds)
    members: int = 0
    deleted_at: dt.datetime | None = None


class Groups(Repo):
    def list_groups(self, *, include_deleted: bool = False) -> list[GroupInfo]:
        query = Group.select()
        if not include_deleted:
            query = query.where(Group.deleted_at.is_null())
        with db_errors("listing groups"):
            rows = self._rows(query.order_by(Group.name))
            return [self._info(row) for row in rows]

    def get(self, name: str, *, include_deleted: bool = False) -> GroupInfo:
        query = Group.select().where(Group.name == name)
        if not include_deleted:
            query = query.where(Group.deleted_at.is_null())
        with db_errors("finding a group"):
            rows = self._rows(query.limit(1))
            if not rows:
                raise NotFoundError(f"there is no group named {name!r}", param="group")
            return self._info(rows[0])

    def get_by_id(self, group_id: int) -> GroupInfo:
        with db_errors("finding a group"):
            rows = self._rows(Group.select().where(Group.id == group_id).limit(1))
            if not rows:
                raise NotFoundError(f"there is no group {group_id}", param="group_id")
            return self._info(rows[0])

    def by_invite_code(self, code: str) -> GroupInfo | None:
        code = code.strip()
        if not code:
            return None
        with db_errors("checking an invite code"):
            rows = self._rows(
                Group.select()
                .where((Group.invite_code == code) & Group.deleted_at.is_null())
                .limit(1)
            )
            return self._info(rows[0]) if rows else None

    def create(
        self,
        name: str,
        *,
        description: str = "",
        permissions: Iterable[str] = (),
        invite_code: str | None = None,
    ) -> GroupInfo:
        name = check_group_name(name)
        granted = check_permissions(permissions)
        with db_errors("creating a group"):
            try:
                with self._db.atomic():
                    group_id = self._q(
                        Group.insert(
                            name=name,
                            description=description.strip(),
                            invite_code=invite_code.strip() if invite_code else None,
                            created_at=utcnow(),
                        )
                    ).execute()
                    self._grant(int(group_id), granted)
            except peewee.IntegrityError:
                raise ConflictError(
                    f"a group named {name!r} (or with that invite code) already exists",
                    param="name",
                ) from None
        return self.get_by_id(int(group_id))

    def update(
        self,
        group_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        invite_code: str | None = None,
        max_jobs: int | None = None,
        requests_per_minute: int | None = None,
        clear_limits: bool = False,
        bounds: Bounds | None = None,
    ) -> GroupInfo:
        """Change a group; ``invite_code=""`` removes the code."""
        changes: dict[str, object] = {}
        if name is not None:
            changes["name"] = check_group_name(name)
        if description is not None:
            changes["description"] = description.strip()
        if invite_code is not None:
            changes["invite_code"] = invite_code.strip() or None
        for key, value in (("max_jobs", max_jobs), ("requests_per_minute", requests_per_minute)):
            if value is not None and value < 0:
                raise InvalidRequestError(f"{key} must be 0 or more", param=key)
            if value is not None or clear_limits:
                changes[key] = value
        if bounds is not None:
            checked = check_bounds(bounds.temperature, bounds.top_p, bounds.max_tokens)
            changes.update(
                max_temperature=checked.temperature,
                max_top_p=checked.top_p,
                max_tokens=checked.max_tokens,
            )
        with db_errors("updating a group"):
            try:
                if changes:
                    self._q(Group.update(**changes).where(Group.id == group_id)).execute()
            except peewee.IntegrityError:
                raise ConflictError(
                    "another group already has that name or invite code", param="name"
                ) from None
        return self.get_by_id(group_id)

    def set_permissions(self, group_id: int, permissions: Iterable[str]) -> GroupInfo:
        """Replace the group's permissions with ``permissions``."""
        granted = check_permissions(permissions)
        with db_errors("setting permissions"), self._db.atomic():
            group = self.get_by_id(group_id)
            _keep_admins_managing(group.name, group.permissions - granted)
            self._q(GroupPermission.delete().where(GroupPermission.group == group_id)).execute()
            self._grant(group_id, granted)
        return self.get_by_id(group_id)

    def grant(self, name: str, permissions: Iterable[str]) -> GroupInfo:
        group = self.get(name)
        granted = check_permissions(permissions) - group.permissions
        with db_errors("granting permissions"), self._db.atomic():
            self._grant(group.id, granted)
        return self.get_by_id(group.id)

    def revoke(self, name: str, permissions: Iterable[str]) -> GroupInfo:
        group = self.get(name)
        permissions = check_permissions(permissions)
        _keep_admins_managing(group.name, permissions)
        with db_errors("revoking permissions"):
            self._q(
                GroupPermission.delete().where(
                    (GroupPermission.group == group.id)
                    & GroupPermission.permission.in_(list(permissions))
                )
            ).execute()
        return self.get_by_id(group.id)

    def grant_to_all(self, permission: str) -> None:
        """Give every live group ``permission`` (a new model is open to all, as in Kuwa)."""
        with db_errors("granting a permission"), self._db.atomic():
            for group in self.list_groups():
                if permission not in group.permissions:
                    self._grant(group.id, {permission})

    def delete(self, group_id: int) -> None:
        """Soft delete: members keep their account but lose the group's permissions."""
        group = self.get_by_id(group_id)
        if group.name in (perms.ADMINS, perms.USERS):
            raise InvalidRequestError(
                f"the {group.name} group cannot be deleted (Kuwa needs it)", param="group_id"
            )
        with db_errors("deleting a group"):
            self._q(
                Group.update(deleted_at=utcnow(), invite_code=None).where(Group.id == group_id)
            ).execute()

    def restore(self, group_id: int) -> GroupInfo:
        with db_errors("restoring a group"):
            self._q(Group.update(deleted_at=None).where(Group.id == group_id)).execute()
        return self.get_by_id(group_id)

    def model_grants(self) -> dict[str, frozenset[str]]:
        """Live group name -> the access codes of the models its members may use."""
        prefix = perms.MODEL_PREFIX
        grants: dict[str, set[str]] = {}
        with db_errors("reading model permissions"):
            rows = self._q(
                GroupPermission.select(Group.name, GroupPermission.permission)
                .join(Group)
                .where(Group.deleted_at.is_null() & GroupPermission.permission.startswith(prefix))
                .tuples()
            )
            for name, permission in rows:
                grants.setdefault(name, set()).add(permission[len(prefix) :])
        return {name: frozenset(codes) for name, codes in grants.items()}

    def seed(self) -> None:
        """Create the Admins and Users groups when there are no groups at all."""
        with db_errors("seeding groups"), self._db.atomic():
            if self._q(Group.select()).exists():
                return
            for name, granted in perms.SEEDED.items():
                group_id = self._q(Group.insert(name=name, created_at=utcnow())).execute()
                self._grant(int(group_id), set(granted))

    # --- helpers ------------------------------------------------------------------------
    def _grant(self, group_id: int, permissions: Iterable[str]) -> None:
        rows = [{"group": group_id, "permission": p} for p in sorted(set(permissions))]
        if rows:
            self._q(GroupPermission.insert_many(rows)).execute()

    def _info(self, row: dict[str, object]) -> GroupInfo:
        group_id = int(row["id"])  # type: ignore[call-overload]
        granted = frozenset(
            p
            for (p,) in self._q(
                GroupPermission.select(GroupPermission.permission)
                .where(GroupPermission.group == group_id)
                .tuples()
            )
        )
        members = self._q(User.select().where(User.group == group_id)).count()
        return GroupInfo(
            id=group_id,
            name=str(row["name"]),
            description=str(row["description"]),
            invite_code=row["invite_code"],  # type: ignore[arg-type]
            max_jobs=row["max_jobs"],  # type: ignore[arg-type]
            requests_per_minute=row["requests_per_minute"],  # type: ignore[arg-type]
            permissions=granted,
            bounds=Bounds(
                row["max_temperature"],  # type: ignore[arg-type]
                row["max_top_p"],  # type: ignore[arg-type]
                row["max_tokens"],  # type: ignore[arg-type]
            ),
            members=int(members),
            deleted_at=aware_or_none(row["deleted_at"]),  # type: ignore[arg-type]
        )


def _keep_admins_managing(group: str, removed: Iterable[str]) -> None:
    if group == perms.ADMINS and "tab_Manage" in set(removed):
        raise InvalidRequestError(
            "the Admins group must keep tab_Manage, or nobody could manage Kuwa",
            param="permission",
        )


def new_invite_code() -> str:
    return secrets.token_urlsafe(9)


def check_group_name(name: str) -> str:
    value = name.strip()
    if not value or len(value) > 100:
        raise InvalidRequestError("a group name must be 1 to 100 characters long", param="name")
    return value


def check_permissions(permissions: Iterable[str]) -> set[str]:
    granted = {p.strip() for p in permissions if p.strip()}
    unknown = sorted(p for p in granted if not perms.is_known(p))
    if unknown:
        raise InvalidRequestError(
            f"unknown permission {unknown[0]!r}; see docs for the permission names",
            param="permission",
        )
    return granted
