"""Managing users: the Manage tab's Users page and a user's own page.

Every change is written to the audit log (never a password) and drops the gateway's cached
permissions (``on_user_changed``), so the API sees it at once. An administrator cannot lock
themself out: they cannot delete their own account, leave the Admins group, or move to a
group without the Manage tab. Groups are in ``manage_groups``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.accounts import GroupInfo, UserInfo, permissions
from kuwa.accounts.service import check_password_rules
from kuwa.errors import KuwaError, NotFoundError
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.rooms import Trash
from kuwa.web import forms
from kuwa.web.core import page, render, system_config, web_state
from kuwa.web.manage import MANAGE
from kuwa.web.manage_forms import (
    FRESH,
    Shown,
    acting_on,
    admin_of,
    audit,
    checked,
    drop_cached,
    not_found,
    page_number,
    redirect,
    text,
)

PAGE_SIZE = 50

Values = dict[str, Any]


@page(MANAGE)
@endpoint("The users", media=HTML)
async def users(request: Request) -> Response:
    return await _users_page(request)


async def _users_page(request: Request, shown: Shown[Values] = FRESH) -> Response:
    store = web_state(request).store
    query = request.query_params.get("q", "").strip()
    number = page_number(request.query_params.get("page"))

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
        status_code=shown.status,
        rows=rows[:PAGE_SIZE],
        q=query,
        page=number,
        prev_link=link(number - 1) if number > 1 else "",
        next_link=link(number + 1) if len(rows) > PAGE_SIZE else "",
        total=total,
        groups=groups,
        error=shown.error,
        values=shown.values
        or {"group": permissions.USERS, "email_verified": True, "must_change_password": True},
    )


def _sent(form: FormData, user: UserInfo | None = None) -> Values:
    """A user form's fields as sent (blank ones fall back to ``user``'s when editing)."""
    return {
        "email": text(form, "email", user.email if user else ""),
        "name": text(form, "name", user.name if user else ""),
        "group": text(form, "group", (user.group or "") if user else ""),
        "must_change_password": checked(form, "must_change_password"),
        "email_verified": checked(form, "email_verified"),
    }


@page(MANAGE)
@endpoint("Create a user", form=forms.UserFields, redirect=True)
async def user_create(request: Request) -> Response:
    web = web_state(request)
    admin = await admin_of(request)
    form = await request.form()
    values = _sent(form)
    values["group"] = values["group"] or permissions.USERS
    password = str(form.get("password", ""))
    try:
        user = await run_in_threadpool(
            lambda: web.store.accounts.create_user(
                values["email"],
                values["name"],
                password,
                group=values["group"],
                email_verified=values["email_verified"],
                must_change_password=values["must_change_password"],
            )
        )
    except KuwaError as exc:
        return await _users_page(request, Shown.refused(exc, values))
    detail = f"group {user.group}" + (
        "; must change password" if values["must_change_password"] else ""
    )
    await audit(request, admin, "user_created", target=user.email, detail=detail)
    drop_cached(request)
    return redirect(
        request,
        "/manage/users?" + urlencode({"q": user.email}),
        f"Created the account {user.email}.",
    )


async def _user(request: Request) -> UserInfo | None:
    user_id = int(request.path_params["user_id"])
    return await run_in_threadpool(web_state(request).store.accounts.get_user, user_id)


acting_on_user = acting_on("user", _user)


@page(MANAGE)
@endpoint("A user", media=HTML)
@acting_on_user
async def user_edit(request: Request, admin: UserInfo, user: UserInfo) -> Response:
    return await _user_page(request, admin, user)


async def _user_page(
    request: Request, admin: UserInfo, user: UserInfo, shown: Shown[Values] = FRESH
) -> Response:
    web = web_state(request)
    groups = await run_in_threadpool(web.store.groups.list_groups)
    live = {g.name for g in groups}
    days = (await system_config(request)).trash_days
    trashed = await run_in_threadpool(Trash(web.store.db).deleted_rooms_of, user.id, days)
    return await render(
        request,
        "manage/users_edit.html",
        status_code=shown.status,
        target=user,
        groups=groups,
        orphan_group=user.group if user.group is not None and user.group not in live else None,
        is_self=user.id == admin.id,
        trashed=trashed,
        error=shown.error,
        values=shown.values
        or {
            "name": user.name,
            "email": user.email,
            "group": user.group or "",
            "must_change_password": user.must_change_password,
            "email_verified": user.email_verified,
        },
    )


@page(MANAGE)
@endpoint("Change a user", form=forms.UserFields, redirect=True)
@acting_on_user
async def user_update(request: Request, admin: UserInfo, user: UserInfo) -> Response:
    web = web_state(request)
    store = web.store
    form = await request.form()
    values = _sent(form, user)
    name, email, group = values["name"], values["email"], values["group"]
    must_change, verified = values["must_change_password"], values["email_verified"]
    password = str(form.get("password", ""))

    async def refuse(message: str, status: int = 400) -> Response:
        return await _user_page(request, admin, user, Shown(message, status, values))

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
        return await _user_page(request, admin, user, Shown.refused(exc, values))

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
        return await _user_page(request, admin, user, Shown.refused(exc, values))

    changes = _user_changes(user, updated)
    if changes:
        await audit(request, admin, "user_updated", target=updated.email, detail="; ".join(changes))
    if password:
        # The old password may have leaked: end every sign-in but the admin's own.
        await web.sessions.end_all(user.id, keep=request if user.id == admin.id else None)
        await audit(
            request,
            admin,
            "password_set_by_admin",
            target=updated.email,
            detail="must change it at next sign-in" if must_change else "",
        )
    if changes or password:
        drop_cached(request)
        message = f"Saved {updated.email}."
        if password:
            message += " The new password is set and their sign-ins were ended."
    else:
        message = "Nothing changed."
    return redirect(request, f"/manage/users/{user.id}", message)


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
@endpoint("Delete a user", form=forms.Confirm, redirect=True)
@acting_on_user
async def user_delete(request: Request, admin: UserInfo, user: UserInfo) -> Response:
    web = web_state(request)
    form = await request.form()
    if user.id == admin.id:
        message = "You cannot delete your own account; ask another administrator."
        return await _user_page(request, admin, user, Shown(message, 400))
    if not checked(form, "confirm"):
        message = "Tick “Yes, delete this account” to confirm the deletion."
        return await _user_page(request, admin, user, Shown(message, 400))
    try:
        await run_in_threadpool(web.store.accounts.delete_user, user.id)
    except NotFoundError:
        return await not_found(request, "user")
    await web.sessions.end_all(user.id)
    drop_cached(request)
    await audit(
        request,
        admin,
        "user_deleted",
        target=user.email,
        detail=f"group {user.group}; source {user.source}",
    )
    return redirect(request, "/manage/users", f"Deleted the account {user.email}.")


@page(MANAGE)
@endpoint("Restore a user's deleted room", redirect=True)
@acting_on_user
async def user_room_restore(request: Request, admin: UserInfo, user: UserInfo) -> Response:
    """Bring back a room the user deleted (it is in their trash until it is purged)."""
    room_id = int(request.path_params["room_id"])
    try:
        await run_in_threadpool(Trash(web_state(request).store.db).restore_room, room_id, user.id)
    except NotFoundError:
        return await not_found(request, "room")
    await audit(request, admin, "room_restored", target=user.email, detail=f"room {room_id}")
    return redirect(request, f"/manage/users/{user.id}#trash", "room_restored_flash")


def routes() -> list[BaseRoute]:
    return [
        Route("/manage/users", users, methods=["GET"]),
        Route("/manage/users", user_create, methods=["POST"]),
        Route("/manage/users/{user_id:id}", user_edit, methods=["GET"]),
        Route("/manage/users/{user_id:id}", user_update, methods=["POST"]),
        Route("/manage/users/{user_id:id}/delete", user_delete, methods=["POST"]),
        Route(
            "/manage/users/{user_id:id}/rooms/{room_id:id}/restore",
            user_room_restore,
            methods=["POST"],
        ),
    ]
