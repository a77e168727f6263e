"""Managing groups: the Manage tab's Groups page and a group's own page (its permissions,
limits and invite code).

Every change is written to the audit log and drops the gateway's cached permissions
(``on_user_changed``), so the API sees it at once. An administrator cannot lock themself
out: they cannot delete their own group or take the Manage tab from it, and the Admins group
always keeps the Manage tab.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kuwa.accounts import Bounds, GroupInfo, ModelInfo, UserInfo, new_invite_code, permissions
from kuwa.errors import ConflictError, KuwaError, NotFoundError
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.web import forms
from kuwa.web.core import Handler, page, render, web_state
from kuwa.web.manage import MANAGE
from kuwa.web.manage_forms import (
    FRESH,
    Acting,
    Shown,
    acting_on,
    admin_of,
    audit,
    drop_cached,
    redirect,
    sentence,
    text,
)

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("perm_section_tabs", permissions.TABS),
    ("perm_section_room", permissions.ROOM),
    ("perm_section_profile", permissions.PROFILE),
    ("perm_section_dashboard", permissions.DASHBOARD),
    ("perm_section_store", permissions.STORE),
)
"""The fixed permissions as the group page groups its checkboxes (a UI string key each; a
permission's label and description are the keys ``perm_NAME`` and ``perm_NAME_desc``)."""

# Groups the server finds by name: renaming them would break sign-up and `--admin`.
FIXED_NAMES = (permissions.ADMINS, permissions.USERS)

Values = dict[str, Any]


@page(MANAGE)
@endpoint("The groups", media=HTML)
async def groups(request: Request) -> Response:
    return await _groups_page(request)


async def _groups_page(request: Request, shown: Shown[Values] = FRESH) -> Response:
    store = web_state(request).store
    every = await run_in_threadpool(lambda: store.groups.list_groups(include_deleted=True))
    return await render(
        request,
        "manage/groups.html",
        status_code=shown.status,
        live=[g for g in every if g.deleted_at is None],
        deleted=[g for g in every if g.deleted_at is not None],
        error=shown.error,
        values=shown.values or {},
    )


@page(MANAGE)
@endpoint("Create a group", form=forms.NewGroup, redirect=True)
async def group_create(request: Request) -> Response:
    store = web_state(request).store
    admin = await admin_of(request)
    form = await request.form()
    name = text(form, "name")
    description = text(form, "description")
    copy_from = text(form, "copy_from")
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
        return await _groups_page(request, Shown.refused(exc, values))
    detail = f"permissions copied from {source.name}" if source is not None else "no permissions"
    await audit(request, admin, "group_created", target=group.name, detail=detail)
    drop_cached(request)
    return redirect(
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


acting_on_group = acting_on("group", _group)


@page(MANAGE)
@endpoint("A group: its permissions, limits and invite code", media=HTML)
@acting_on_group
async def group_edit(request: Request, admin: UserInfo, group: GroupInfo) -> Response:
    return await _group_page(request, group)


async def _group_page(
    request: Request,
    group: GroupInfo,
    shown: Shown[Values] = FRESH,
    checked: Iterable[str] | None = None,
) -> Response:
    store = web_state(request).store
    models: list[ModelInfo] = await run_in_threadpool(store.catalog.list_models)
    return await render(
        request,
        "manage/groups_edit.html",
        status_code=shown.status,
        group=group,
        sections=SECTIONS,
        models=models,
        checked=frozenset(group.permissions if checked is None else checked),
        fixed_name=group.name in FIXED_NAMES,
        error=shown.error,
        values=shown.values
        or {
            "name": group.name,
            "description": group.description,
            "max_jobs": "" if group.max_jobs is None else str(group.max_jobs),
            "max_temperature": _shown(group.bounds.temperature),
            "max_top_p": _shown(group.bounds.top_p),
            "max_tokens": _shown(group.bounds.max_tokens),
            "requests_per_minute": (
                "" if group.requests_per_minute is None else str(group.requests_per_minute)
            ),
        },
    )


async def _with_error(request: Request, group: GroupInfo, message: str, status: int) -> Response:
    """The group's page with ``message`` above it."""
    return await _group_page(request, group, Shown(message, status))


def acting_on_live_group(handler: Acting[GroupInfo]) -> Handler:
    """Like ``acting_on_group``, but a deleted group is refused (409) until it is restored."""

    @functools.wraps(handler)
    async def live(request: Request, admin: UserInfo, group: GroupInfo) -> Response:
        if group.deleted_at is not None:
            message = "This group is deleted: restore it first."
            return await _with_error(request, group, message, 409)
        return await handler(request, admin, group)

    return acting_on_group(live)


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


BOUND_FIELDS = ("max_temperature", "max_top_p", "max_tokens")


def _bounds(values: Values) -> Bounds:
    """The group's bounds from the form (empty: no bound); checked by Groups.update."""

    def number(key: str, label: str) -> float | None:
        raw = str(values.get(key, "")).strip()
        if not raw:
            return None
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{label} must be a number, or empty for no bound.") from None

    tokens = number("max_tokens", "Max tokens")
    if tokens is not None and tokens != int(tokens):
        raise ValueError("Max tokens must be a whole number, or empty for no bound.")
    return Bounds(
        number("max_temperature", "Highest temperature"),
        number("max_top_p", "Highest top-p"),
        None if tokens is None else int(tokens),
    )


def _shown(value: float | None) -> str:
    return "" if value is None else (str(int(value)) if value == int(value) else f"{value:g}")


def _limit_text(value: int | None) -> str:
    return "default" if value is None else ("unlimited" if value == 0 else str(value))


@page(MANAGE)
@endpoint("Change a group", form=forms.GroupFields, redirect=True)
@acting_on_live_group
async def group_update(request: Request, admin: UserInfo, group: GroupInfo) -> Response:
    store = web_state(request).store
    form = await request.form()
    name = text(form, "name", group.name)
    description = text(form, "description", group.description)
    raw_jobs = text(form, "max_jobs")
    raw_rpm = text(form, "requests_per_minute")
    values = {
        "name": name,
        "description": description,
        "max_jobs": raw_jobs,
        "requests_per_minute": raw_rpm,
        **{key: text(form, key) for key in BOUND_FIELDS},
    }
    models = await run_in_threadpool(store.catalog.list_models)
    on_page = set(permissions.ALL) | {m.permission for m in models}
    submitted = {str(p) for p in form.getlist("perm")}
    # Permissions the page does not show (a deleted model's) are kept as they are.
    wanted = frozenset((submitted & on_page) | (group.permissions - on_page))

    async def refuse(message: str, status: int = 400) -> Response:
        return await _group_page(request, group, Shown(message, status, values), wanted)

    try:
        max_jobs = _limit(raw_jobs, "Max running jobs")
        per_minute = _limit(raw_rpm, "Requests per minute")
        bounds = _bounds(values)
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
                bounds=bounds,
            )
            if wanted != group.permissions:
                store.groups.set_permissions(group.id, wanted)
            return store.groups.get_by_id(group.id)

    try:
        updated = await run_in_threadpool(apply)
    except KuwaError as exc:
        return await _group_page(request, group, Shown.refused(exc, values), wanted)

    changes = _group_changes(group, updated)
    if changes:
        await audit(request, admin, "group_updated", target=updated.name, detail="; ".join(changes))
    added = sorted(updated.permissions - group.permissions)
    removed = sorted(group.permissions - updated.permissions)
    if added or removed:
        parts = ([f"added: {', '.join(added)}"] if added else []) + (
            [f"removed: {', '.join(removed)}"] if removed else []
        )
        await audit(
            request, admin, "permissions_changed", target=updated.name, detail="; ".join(parts)
        )
    if not (changes or added or removed):
        return redirect(request, f"/manage/groups/{group.id}", "Nothing changed.")
    drop_cached(request)
    return redirect(request, f"/manage/groups/{group.id}", f"Saved {updated.name}.")


def _group_changes(before: GroupInfo, after: GroupInfo) -> list[str]:
    changes = []
    if after.name != before.name:
        changes.append(f"name {before.name!r} -> {after.name!r}")
    if after.description != before.description:
        changes.append("description")
    if after.max_jobs != before.max_jobs:
        changes.append(
            f"max running jobs {_limit_text(before.max_jobs)} -> {_limit_text(after.max_jobs)}"
        )
    if after.requests_per_minute != before.requests_per_minute:
        changes.append(
            f"requests per minute {_limit_text(before.requests_per_minute)} -> "
            f"{_limit_text(after.requests_per_minute)}"
        )
    if after.bounds != before.bounds:
        changes.append(f"bounds {before.bounds.to_json()} -> {after.bounds.to_json()}")
    return changes


@page(MANAGE)
@endpoint("Make or clear a group's invite code", form=forms.Invite, redirect=True)
@acting_on_live_group
async def group_invite(request: Request, admin: UserInfo, group: GroupInfo) -> Response:
    store = web_state(request).store
    form = await request.form()
    action = text(form, "action")
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
            return await _with_error(request, group, sentence(exc.message), exc.status)
        detail, message = "new invite code", "A new invite code is set; the old one stops working."
    elif action == "clear":
        await run_in_threadpool(lambda: store.groups.update(group.id, invite_code=""))
        detail, message = "invite code cleared", "The invite code is cleared."
    else:
        return await _with_error(request, group, "Unknown invite code action.", 400)
    await audit(request, admin, "group_updated", target=group.name, detail=detail)
    drop_cached(request)
    return redirect(request, f"/manage/groups/{group.id}", message)


@page(MANAGE)
@endpoint("Delete a group (it can be restored)", redirect=True)
@acting_on_group
async def group_delete(request: Request, admin: UserInfo, group: GroupInfo) -> Response:
    store = web_state(request).store
    if group.name == permissions.ADMINS:
        message = "The Admins group cannot be deleted; otherwise nobody could manage Kuwa."
        return await _with_error(request, group, message, 400)
    if group.name == admin.group:
        message = "You cannot delete your own group; you would lock yourself out."
        return await _with_error(request, group, message, 400)
    if group.deleted_at is not None:
        return redirect(request, "/manage/groups", f"{group.name} is already deleted.")
    try:
        await run_in_threadpool(store.groups.delete, group.id)
    except KuwaError as exc:
        return await _with_error(request, group, sentence(exc.message), exc.status)
    await audit(
        request, admin, "group_deleted", target=group.name, detail=f"{group.members} members"
    )
    drop_cached(request)
    return redirect(
        request,
        "/manage/groups",
        f"Deleted the group {group.name}. Its {group.members} members keep their accounts but "
        "may do nothing until they are moved or the group is restored.",
    )


@page(MANAGE)
@endpoint("Restore a deleted group", redirect=True)
@acting_on_group
async def group_restore(request: Request, admin: UserInfo, group: GroupInfo) -> Response:
    store = web_state(request).store
    if group.deleted_at is None:
        return redirect(request, "/manage/groups", f"{group.name} is not deleted.")
    await run_in_threadpool(store.groups.restore, group.id)
    await audit(request, admin, "group_restored", target=group.name)
    drop_cached(request)
    return redirect(
        request,
        f"/manage/groups/{group.id}",
        f"Restored the group {group.name}. Its invite code was cleared when it was deleted.",
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/manage/groups", groups, methods=["GET"]),
        Route("/manage/groups", group_create, methods=["POST"]),
        Route("/manage/groups/{group_id:id}", group_edit, methods=["GET"]),
        Route("/manage/groups/{group_id:id}", group_update, methods=["POST"]),
        Route("/manage/groups/{group_id:id}/invite", group_invite, methods=["POST"]),
        Route("/manage/groups/{group_id:id}/delete", group_delete, methods=["POST"]),
        Route("/manage/groups/{group_id:id}/restore", group_restore, methods=["POST"]),
    ]
