"""Managing users and groups: the Manage tab's Users and Groups pages.

Every change is written to the audit log (never a password) and drops the gateway's cached
permissions (``on_user_changed``), so the API sees it at once. An administrator cannot lock
themself out: they cannot delete their own account, leave the Admins group, delete their own
group or take the Manage tab from it, and the Admins group always keeps the Manage tab.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from kuwa.accounts import GroupInfo, ModelInfo, UserInfo, new_invite_code, permissions
from kuwa.accounts.service import check_password_rules
from kuwa.errors import ConflictError, KuwaError, NotFoundError
from kuwa.web.core import client_ip, current_user, page, render, web_state
from kuwa.web.manage import MANAGE
from kuwa.web.session import flash

PAGE_SIZE = 50

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Tabs", permissions.TABS),
    ("Room", permissions.ROOM),
    ("Profile", permissions.PROFILE),
    ("Dashboard", permissions.DASHBOARD),
    ("Store", permissions.STORE),
)
"""The fixed permissions as the group page groups its checkboxes."""

# Groups the server finds by name: renaming them would break sign-up and `--admin`.
FIXED_NAMES = (permissions.ADMINS, permissions.USERS)


# --- shared helpers -------------------------------------------------------------------------
async def _admin(request: Request) -> UserInfo:
    user = await current_user(request)
    assert user is not None  # page() let only signed-in managers through
    return user


async def _audit(
    request: Request, admin: UserInfo, action: str, *, target: str, detail: str = ""
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


def _changed(request: Request) -> None:
    """Drop the gateway's cached permissions and models: users or groups changed."""
    web_state(request).on_user_changed()


def _checked(form: FormData, name: str) -> bool:
    return str(form.get(name, "")).lower() in ("on", "yes", "1", "true")


def _text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return default if value is None else str(value).strip()


def _sentence(message: str) -> str:
    """An error message as a sentence for a page ("the name must…" -> "The name must….")."""
    message = message.strip()
    if not message:
        return "Something went wrong."
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def _form_status(exc: KuwaError) -> int:
    """The status for a form answer: a group named in a form that does not exist is a bad
    form (400), not a missing page."""
    return 400 if isinstance(exc, NotFoundError) else exc.status


def _page_number(raw: str | None) -> int:
    try:
        return max(1, int(raw or "1"))
    except ValueError:
        return 1


async def _not_found(request: Request, what: str) -> Response:
    return await render(
        request, "error.html", status_code=404, status=404, message=f"There is no such {what}."
    )


def _redirect(request: Request, path: str, message: str) -> Response:
    """Back to a page (303), with ``message`` shown there once."""
    flash(request, message)
    return RedirectResponse(path, status_code=303)


# --- users ----------------------------------------------------------------------------------
@page(MANAGE)
async def users(request: Request) -> Response:
    return await _users_page(request)


async def _users_page(
    request: Request,
    *,
    error: str = "",
    status: int = 200,
    values: dict[str, Any] | None = None,
) -> Response:
    store = web_state(request).store
    query = request.query_params.get("q", "").strip()
    number = _page_number(request.query_params.get("page"))

    def load() -> tuple[list[Any], int, list[GroupInfo]]:
        rows = store.accounts.list_users(
            query, limit=PAGE_SIZE + 1, offset=(number - 1) * PAGE_SIZE
        )
        return rows, store.accounts.count_users(), store.groups.list_groups()

    rows, total, groups = await run_in_threadpool(load)

    def link(to: int) -> str:
        params = {"page": str(to)} | ({"q": query} if query else {})
        return "/manage/users?" + urlencode(params)

    return await render(
        request,
        "manage/users.html",
        status_code=status,
        rows=rows[:PAGE_SIZE],
        q=query,
        page=number,
        prev_link=link(number - 1) if number > 1 else "",
        next_link=link(number + 1) if len(rows) > PAGE_SIZE else "",
        total=total,
        groups=groups,
        error=error,
        values=values
        or {"group": permissions.USERS, "email_verified": True, "must_change_password": True},
    )


@page(MANAGE)
async def user_create(request: Request) -> Response:
    web = web_state(request)
    admin = await _admin(request)
    form = await request.form()
    email = _text(form, "email")
    name = _text(form, "name")
    password = str(form.get("password", ""))
    group = _text(form, "group") or permissions.USERS
    must_change = _checked(form, "must_change_password")
    verified = _checked(form, "email_verified")
    values = {
        "email": email,
        "name": name,
        "group": group,
        "must_change_password": must_change,
        "email_verified": verified,
    }
    try:
        user = await run_in_threadpool(
            lambda: web.store.accounts.create_user(
                email,
                name,
                password,
                group=group,
                email_verified=verified,
                must_change_password=must_change,
            )
        )
    except KuwaError as exc:
        return await _users_page(
            request, error=_sentence(exc.message), status=_form_status(exc), values=values
        )
    detail = f"group {user.group}" + ("; must change password" if must_change else "")
    await _audit(request, admin, "user_created", target=user.email, detail=detail)
    _changed(request)
    return _redirect(
        request,
        "/manage/users?" + urlencode({"q": user.email}),
        f"Created the account {user.email}.",
    )


async def _user(request: Request) -> UserInfo | None:
    user_id = int(request.path_params["user_id"])
    return await run_in_threadpool(web_state(request).store.accounts.get_user, user_id)


@page(MANAGE)
async def user_edit(request: Request) -> Response:
    user = await _user(request)
    if user is None:
        return await _not_found(request, "user")
    return await _user_page(request, user)


async def _user_page(
    request: Request,
    user: UserInfo,
    *,
    error: str = "",
    status: int = 200,
    values: dict[str, Any] | None = None,
) -> Response:
    web = web_state(request)
    admin = await _admin(request)
    groups = await run_in_threadpool(web.store.groups.list_groups)
    live = {g.name for g in groups}
    return await render(
        request,
        "manage/users_edit.html",
        status_code=status,
        target=user,
        groups=groups,
        orphan_group=user.group if user.group is not None and user.group not in live else None,
        is_self=user.id == admin.id,
        error=error,
        values=values
        or {
            "name": user.name,
            "email": user.email,
            "group": user.group or "",
            "must_change_password": user.must_change_password,
            "email_verified": user.email_verified,
        },
    )


@page(MANAGE)
async def user_update(request: Request) -> Response:
    web = web_state(request)
    store = web.store
    admin = await _admin(request)
    user = await _user(request)
    if user is None:
        return await _not_found(request, "user")
    form = await request.form()
    name = _text(form, "name", user.name)
    email = _text(form, "email", user.email)
    group = _text(form, "group", user.group or "")
    must_change = _checked(form, "must_change_password")
    verified = _checked(form, "email_verified")
    password = str(form.get("password", ""))
    values = {
        "name": name,
        "email": email,
        "group": group,
        "must_change_password": must_change,
        "email_verified": verified,
    }

    async def refuse(message: str, status: int = 400) -> Response:
        return await _user_page(request, user, error=message, status=status, values=values)

    new_group = group if group != (user.group or "") else None
    if new_group == "":
        return await refuse("Choose a group.")
    try:
        if password:
            check_password_rules(password)
        if new_group is not None and user.id == admin.id:
            if user.group == permissions.ADMINS:
                return await refuse(
                    "You cannot remove yourself from the Admins group; ask another "
                    "administrator to do it."
                )
            target = await run_in_threadpool(store.groups.get, new_group)
            if MANAGE not in target.permissions:
                return await refuse(
                    f"You cannot move yourself to {target.name}: that group may not use the "
                    "Manage tab, so you would lock yourself out."
                )
    except KuwaError as exc:
        return await refuse(_sentence(exc.message), _form_status(exc))

    new_email = email if email.lower() != user.email else None

    def apply() -> UserInfo:
        with store.db.atomic():
            updated = store.accounts.update_user(
                user.id,
                name=name if name != user.name else None,
                email=new_email,
                group=new_group,
                must_change_password=(
                    must_change if must_change != user.must_change_password else None
                ),
                email_verified=verified if verified != user.email_verified else None,
            )
            if password:
                store.accounts.set_password(user.id, password, must_change=must_change)
            return updated

    try:
        updated = await run_in_threadpool(apply)
    except KuwaError as exc:
        return await refuse(_sentence(exc.message), _form_status(exc))

    changes = _user_changes(user, updated)
    if changes:
        await _audit(
            request, admin, "user_updated", target=updated.email, detail="; ".join(changes)
        )
    if password:
        # The old password may have leaked: end every sign-in but the admin's own.
        await web.sessions.end_all(user.id, keep=request if user.id == admin.id else None)
        await _audit(
            request,
            admin,
            "password_set_by_admin",
            target=updated.email,
            detail="must change it at next sign-in" if must_change else "",
        )
    if changes or password:
        _changed(request)
        message = f"Saved {updated.email}."
        if password:
            message += " The new password is set and their sign-ins were ended."
    else:
        message = "Nothing changed."
    return _redirect(request, f"/manage/users/{user.id}", message)


def _user_changes(before: UserInfo, after: UserInfo) -> list[str]:
    changes = []
    if before.name != after.name:
        changes.append(f"name {before.name!r} -> {after.name!r}")
    if before.email != after.email:
        changes.append(f"email {before.email} -> {after.email}")
    if before.group != after.group:
        changes.append(f"group {before.group} -> {after.group}")
    if before.must_change_password != after.must_change_password:
        changes.append(f"must change password: {'yes' if after.must_change_password else 'no'}")
    if before.email_verified != after.email_verified:
        changes.append(f"email verified: {'yes' if after.email_verified else 'no'}")
    return changes


@page(MANAGE)
async def user_delete(request: Request) -> Response:
    web = web_state(request)
    admin = await _admin(request)
    user = await _user(request)
    if user is None:
        return await _not_found(request, "user")
    form = await request.form()
    if user.id == admin.id:
        return await _user_page(
            request,
            user,
            error="You cannot delete your own account; ask another administrator.",
            status=400,
        )
    if not _checked(form, "confirm"):
        return await _user_page(
            request,
            user,
            error="Tick “Yes, delete this account” to confirm the deletion.",
            status=400,
        )
    try:
        await run_in_threadpool(web.store.accounts.delete_user, user.id)
    except NotFoundError:
        return await _not_found(request, "user")
    await web.sessions.end_all(user.id)
    _changed(request)
    await _audit(
        request,
        admin,
        "user_deleted",
        target=user.email,
        detail=f"group {user.group}; source {user.source}",
    )
    return _redirect(request, "/manage/users", f"Deleted the account {user.email}.")


# --- groups ---------------------------------------------------------------------------------
@page(MANAGE)
async def groups(request: Request) -> Response:
    return await _groups_page(request)


async def _groups_page(
    request: Request,
    *,
    error: str = "",
    status: int = 200,
    values: dict[str, Any] | None = None,
) -> Response:
    store = web_state(request).store
    every = await run_in_threadpool(lambda: store.groups.list_groups(include_deleted=True))
    return await render(
        request,
        "manage/groups.html",
        status_code=status,
        live=[g for g in every if g.deleted_at is None],
        deleted=[g for g in every if g.deleted_at is not None],
        error=error,
        values=values or {},
    )


@page(MANAGE)
async def group_create(request: Request) -> Response:
    store = web_state(request).store
    admin = await _admin(request)
    form = await request.form()
    name = _text(form, "name")
    description = _text(form, "description")
    copy_from = _text(form, "copy_from")
    values = {"name": name, "description": description, "copy_from": copy_from}
    source: GroupInfo | None = None
    try:
        if copy_from:
            try:
                source = await run_in_threadpool(store.groups.get_by_id, int(copy_from))
            except ValueError:
                raise NotFoundError("there is no such group to copy from") from None
        granted = source.permissions if source is not None else frozenset()
        group = await run_in_threadpool(
            lambda: store.groups.create(name, description=description, permissions=granted)
        )
    except KuwaError as exc:
        return await _groups_page(
            request, error=_sentence(exc.message), status=_form_status(exc), values=values
        )
    detail = f"permissions copied from {source.name}" if source is not None else "no permissions"
    await _audit(request, admin, "group_created", target=group.name, detail=detail)
    _changed(request)
    return _redirect(
        request,
        f"/manage/groups/{group.id}",
        f"Created the group {group.name}. Choose what its members may do below.",
    )


async def _group(request: Request) -> GroupInfo | None:
    group_id = int(request.path_params["group_id"])
    try:
        return await run_in_threadpool(web_state(request).store.groups.get_by_id, group_id)
    except NotFoundError:
        return None


@page(MANAGE)
async def group_edit(request: Request) -> Response:
    group = await _group(request)
    if group is None:
        return await _not_found(request, "group")
    return await _group_page(request, group)


async def _group_page(
    request: Request,
    group: GroupInfo,
    *,
    error: str = "",
    status: int = 200,
    values: dict[str, Any] | None = None,
    checked: Iterable[str] | None = None,
) -> Response:
    store = web_state(request).store
    models: list[ModelInfo] = await run_in_threadpool(store.catalog.list_models)
    return await render(
        request,
        "manage/groups_edit.html",
        status_code=status,
        group=group,
        sections=SECTIONS,
        models=models,
        checked=frozenset(group.permissions if checked is None else checked),
        fixed_name=group.name in FIXED_NAMES,
        error=error,
        values=values
        or {
            "name": group.name,
            "description": group.description,
            "max_jobs": "" if group.max_jobs is None else str(group.max_jobs),
            "requests_per_minute": (
                "" if group.requests_per_minute is None else str(group.requests_per_minute)
            ),
        },
    )


def _limit(raw: str, label: str) -> int | None:
    """A limit from a form: empty is the server default (None), 0 unlimited."""
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(
            f"{label} must be a whole number: 0 for unlimited, or empty for the server default."
        )
    return value


def _limit_text(value: int | None) -> str:
    return "default" if value is None else ("unlimited" if value == 0 else str(value))


@page(MANAGE)
async def group_update(request: Request) -> Response:
    store = web_state(request).store
    admin = await _admin(request)
    group = await _group(request)
    if group is None:
        return await _not_found(request, "group")
    if group.deleted_at is not None:
        return await _group_page(
            request, group, error="This group is deleted: restore it first.", status=409
        )
    form = await request.form()
    name = _text(form, "name", group.name)
    description = _text(form, "description", group.description)
    raw_jobs = _text(form, "max_jobs")
    raw_rpm = _text(form, "requests_per_minute")
    values = {
        "name": name,
        "description": description,
        "max_jobs": raw_jobs,
        "requests_per_minute": raw_rpm,
    }
    models = await run_in_threadpool(store.catalog.list_models)
    shown = set(permissions.ALL) | {m.permission for m in models}
    submitted = {str(p) for p in form.getlist("perm")}
    # Permissions the page does not show (a deleted model's) are kept as they are.
    wanted = frozenset((submitted & shown) | (group.permissions - shown))

    async def refuse(message: str, status: int = 400) -> Response:
        return await _group_page(
            request, group, error=message, status=status, values=values, checked=wanted
        )

    try:
        max_jobs = _limit(raw_jobs, "Max running jobs")
        per_minute = _limit(raw_rpm, "Requests per minute")
    except ValueError as exc:
        return await refuse(str(exc))
    if name != group.name and group.name in FIXED_NAMES:
        return await refuse(f"The {group.name} group cannot be renamed: Kuwa finds it by name.")
    if MANAGE not in wanted and MANAGE in group.permissions:
        if group.name == permissions.ADMINS:
            return await refuse(
                f"The Admins group must keep {MANAGE}; otherwise nobody could manage Kuwa."
            )
        if group.name == admin.group:
            return await refuse(
                f"Your own group must keep {MANAGE}; otherwise you would lock yourself out."
            )

    def apply() -> GroupInfo:
        with store.db.atomic():
            store.groups.update(
                group.id,
                name=name,
                description=description,
                max_jobs=max_jobs,
                requests_per_minute=per_minute,
                clear_limits=True,
            )
            if wanted != group.permissions:
                store.groups.set_permissions(group.id, wanted)
            return store.groups.get_by_id(group.id)

    try:
        updated = await run_in_threadpool(apply)
    except KuwaError as exc:
        return await refuse(_sentence(exc.message), _form_status(exc))

    changes = []
    if updated.name != group.name:
        changes.append(f"name {group.name!r} -> {updated.name!r}")
    if updated.description != group.description:
        changes.append("description")
    if updated.max_jobs != group.max_jobs:
        changes.append(
            f"max running jobs {_limit_text(group.max_jobs)} -> {_limit_text(updated.max_jobs)}"
        )
    if updated.requests_per_minute != group.requests_per_minute:
        changes.append(
            f"requests per minute {_limit_text(group.requests_per_minute)} -> "
            f"{_limit_text(updated.requests_per_minute)}"
        )
    if changes:
        await _audit(
            request, admin, "group_updated", target=updated.name, detail="; ".join(changes)
        )
    added = sorted(updated.permissions - group.permissions)
    removed = sorted(group.permissions - updated.permissions)
    if added or removed:
        parts = ([f"added: {', '.join(added)}"] if added else []) + (
            [f"removed: {', '.join(removed)}"] if removed else []
        )
        await _audit(
            request, admin, "permissions_changed", target=updated.name, detail="; ".join(parts)
        )
    if not (changes or added or removed):
        return _redirect(request, f"/manage/groups/{group.id}", "Nothing changed.")
    _changed(request)
    return _redirect(request, f"/manage/groups/{group.id}", f"Saved {updated.name}.")


@page(MANAGE)
async def group_invite(request: Request) -> Response:
    store = web_state(request).store
    admin = await _admin(request)
    group = await _group(request)
    if group is None:
        return await _not_found(request, "group")
    if group.deleted_at is not None:
        return await _group_page(
            request, group, error="This group is deleted: restore it first.", status=409
        )
    form = await request.form()
    action = _text(form, "action")
    if action == "generate":

        def generate() -> GroupInfo:
            for _ in range(5):  # a clash with another group's code is all but impossible
                try:
                    return store.groups.update(group.id, invite_code=new_invite_code())
                except ConflictError:
                    continue
            raise ConflictError("could not make a unique invite code; try again")

        try:
            await run_in_threadpool(generate)
        except KuwaError as exc:
            return await _group_page(
                request, group, error=_sentence(exc.message), status=exc.status
            )
        detail, message = "new invite code", "A new invite code is set; the old one stops working."
    elif action == "clear":
        await run_in_threadpool(lambda: store.groups.update(group.id, invite_code=""))
        detail, message = "invite code cleared", "The invite code is cleared."
    else:
        return await _group_page(request, group, error="Unknown invite code action.", status=400)
    await _audit(request, admin, "group_updated", target=group.name, detail=detail)
    _changed(request)
    return _redirect(request, f"/manage/groups/{group.id}", message)


@page(MANAGE)
async def group_delete(request: Request) -> Response:
    store = web_state(request).store
    admin = await _admin(request)
    group = await _group(request)
    if group is None:
        return await _not_found(request, "group")
    if group.name == permissions.ADMINS:
        return await _group_page(
            request,
            group,
            error="The Admins group cannot be deleted; otherwise nobody could manage Kuwa.",
            status=400,
        )
    if group.name == admin.group:
        return await _group_page(
            request,
            group,
            error="You cannot delete your own group; you would lock yourself out.",
            status=400,
        )
    if group.deleted_at is not None:
        return _redirect(request, "/manage/groups", f"{group.name} is already deleted.")
    try:
        await run_in_threadpool(store.groups.delete, group.id)
    except KuwaError as exc:
        return await _group_page(request, group, error=_sentence(exc.message), status=exc.status)
    await _audit(
        request, admin, "group_deleted", target=group.name, detail=f"{group.members} members"
    )
    _changed(request)
    return _redirect(
        request,
        "/manage/groups",
        f"Deleted the group {group.name}. Its {group.members} members keep their accounts but "
        "may do nothing until they are moved or the group is restored.",
    )


@page(MANAGE)
async def group_restore(request: Request) -> Response:
    store = web_state(request).store
    admin = await _admin(request)
    group = await _group(request)
    if group is None:
        return await _not_found(request, "group")
    if group.deleted_at is None:
        return _redirect(request, "/manage/groups", f"{group.name} is not deleted.")
    await run_in_threadpool(store.groups.restore, group.id)
    await _audit(request, admin, "group_restored", target=group.name)
    _changed(request)
    return _redirect(
        request,
        f"/manage/groups/{group.id}",
        f"Restored the group {group.name}. Its invite code was cleared when it was deleted.",
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/manage/users", users, methods=["GET"]),
        Route("/manage/users", user_create, methods=["POST"]),
        Route("/manage/users/{user_id:int}", user_edit, methods=["GET"]),
        Route("/manage/users/{user_id:int}", user_update, methods=["POST"]),
        Route("/manage/users/{user_id:int}/delete", user_delete, methods=["POST"]),
        Route("/manage/groups", groups, methods=["GET"]),
        Route("/manage/groups", group_create, methods=["POST"]),
        Route("/manage/groups/{group_id:int}", group_edit, methods=["GET"]),
        Route("/manage/groups/{group_id:int}", group_update, methods=["POST"]),
        Route("/manage/groups/{group_id:int}/invite", group_invite, methods=["POST"]),
        Route("/manage/groups/{group_id:int}/delete", group_delete, methods=["POST"]),
        Route("/manage/groups/{group_id:int}/restore", group_restore, methods=["POST"]),
    ]
