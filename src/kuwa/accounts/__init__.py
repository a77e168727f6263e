"""Accounts: users, groups, permissions, tokens, the model catalog, the audit log and system
settings, in SQLite or PostgreSQL (peewee).

Other parts of Kuwa use only these names; they never see peewee objects.
"""

from kuwa.accounts import permissions
from kuwa.accounts.audit import Audit, AuditEntry
from kuwa.accounts.bounds import Bounds, check_bounds
from kuwa.accounts.catalog import REACT_BUTTONS, Catalog, ModelInfo
from kuwa.accounts.codes import CHANGE_EMAIL, RESET_PASSWORD, VERIFY_EMAIL, Codes
from kuwa.accounts.db import close_database, connect_database, open_database
from kuwa.accounts.groups import GroupInfo, Groups, new_invite_code
from kuwa.accounts.identities import PROVIDERS, Identities
from kuwa.accounts.service import TOKEN_PREFIX, Accounts, TokenInfo, UserInfo, UserRow
from kuwa.accounts.store import Store
from kuwa.accounts.system import REGISTRATION_MODES, System, SystemConfig

__all__ = [
    "CHANGE_EMAIL",
    "PROVIDERS",
    "REACT_BUTTONS",
    "REGISTRATION_MODES",
    "RESET_PASSWORD",
    "TOKEN_PREFIX",
    "VERIFY_EMAIL",
    "Accounts",
    "Audit",
    "AuditEntry",
    "Bounds",
    "Catalog",
    "Codes",
    "GroupInfo",
    "Groups",
    "Identities",
    "ModelInfo",
    "Store",
    "System",
    "SystemConfig",
    "TokenInfo",
    "UserInfo",
    "UserRow",
    "check_bounds",
    "close_database",
    "connect_database",
    "new_invite_code",
    "open_database",
    "permissions",
]
