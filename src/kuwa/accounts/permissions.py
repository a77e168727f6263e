"""Kuwa's permission vocabulary (the names Kuwa GenAI OS used) and the seeded groups.

A group holds a set of permission names. Besides the fixed names below, each model has its
own access permission, :func:`model_permission` of its access code.
"""

from __future__ import annotations

TABS = ("tab_Dashboard", "tab_Room", "tab_Store", "tab_Profile", "tab_Manage")

ROOM = (
    "Room_update_new_chat",
    "Room_update_send_message",
    "Room_update_import_chat",
    "Room_read_export_chat",
    "Room_delete_chatroom",
    "Room_update_feedback",
    "Room_update_detail_feedback",
    "Room_update_react_message",
    "Room_update_upload_file",
    "Room_read_access_to_api",
)

PROFILE = (
    "Profile_update_name",
    "Profile_update_email",
    "Profile_update_password",
    "Profile_read_api_token",
    "Profile_update_api_token",
    "Profile_update_external_api_token",
    "Profile_delete_account",
)

DASHBOARD = (
    "Dashboard_read_statistics",
    "Dashboard_read_feedbacks",
    "Dashboard_read_logs",
    "Dashboard_read_inspect",
)

STORE = (
    "Store_create_community_bot",
    "Store_create_group_bot",
    "Store_create_private_bot",
    "Store_update_modify_bot",
    "Store_delete_delete_bot",
    "Store_read_discover_system_bots",
    "Store_read_discover_community_bots",
    "Store_read_discover_group_bots",
    "Store_read_discover_private_bots",
    "Store_read_any_modelfile",
)

ALL: tuple[str, ...] = TABS + ROOM + PROFILE + DASHBOARD + STORE
"""Every fixed permission, in the order the management page lists them."""

MODEL_PREFIX = "model:"

ADMINS = "Admins"
USERS = "Users"

USER_DEFAULTS: tuple[str, ...] = (
    "tab_Room",
    "tab_Store",
    "tab_Profile",
    *ROOM,
    *PROFILE,
    "Store_create_private_bot",
    "Store_update_modify_bot",
    "Store_delete_delete_bot",
    "Store_read_discover_system_bots",
    "Store_read_discover_community_bots",
    "Store_read_discover_group_bots",
    "Store_read_discover_private_bots",
)
"""What the seeded Users group may do: chat, the store, its own profile and the API."""

SEEDED: dict[str, tuple[str, ...]] = {ADMINS: ALL, USERS: USER_DEFAULTS}


def model_permission(access_code: str) -> str:
    """The permission to use the model with this access code."""
    return MODEL_PREFIX + access_code


def is_known(permission: str) -> bool:
    """A fixed permission name or a model permission."""
    return permission in _ALL_SET or (
        permission.startswith(MODEL_PREFIX) and len(permission) > len(MODEL_PREFIX)
    )


_ALL_SET = frozenset(ALL)
