"""Accounts: users and API tokens in SQLite or PostgreSQL (peewee).

Other parts of Kuwa use only these names; they never see peewee objects.
"""

from kuwa.accounts.db import close_database, open_database
from kuwa.accounts.service import TOKEN_PREFIX, Accounts, TokenInfo, UserInfo

__all__ = [
    "TOKEN_PREFIX",
    "Accounts",
    "TokenInfo",
    "UserInfo",
    "close_database",
    "open_database",
]
