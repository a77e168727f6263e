"""kuwa.accounts against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
from argon2 import PasswordHasher
from cryptography.fernet import Fernet

from kuwa.accounts import (
    TOKEN_PREFIX,
    Accounts,
    Catalog,
    Groups,
    UserInfo,
    close_database,
    open_database,
    permissions,
)
from kuwa.accounts.service import derive_fernet_key
from kuwa.errors import ConfigError, ConflictError, InvalidRequestError, KuwaError, NotFoundError
from kuwa.settings import Settings

SECRET = "test secret: any string works"
PASSWORD = "correct horse battery"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, secret_key=SECRET)


@pytest.fixture
def db(settings: Settings) -> Iterator[peewee.Database]:
    database = open_database(settings)
    yield database
    close_database(database)


@pytest.fixture
def accounts(db: peewee.Database) -> Accounts:
    return Accounts(db, SECRET)


@pytest.fixture
def alice(accounts: Accounts) -> UserInfo:
    return accounts.create_user("alice@example.com", "Alice", PASSWORD)


def raw(db: peewee.Database, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run SQL with ``?`` placeholders on either database, bypassing the service."""
    cursor = db.execute_sql(query.replace("?", db.param), params)
    rows: list[tuple[Any, ...]] = cursor.fetchall() if cursor.description else []
    return rows


def utc_naive(delta: dt.timedelta) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) + delta


# --- users ----------------------------------------------------------------------------------
def test_create_user_normalizes_email_and_find_user_finds_it(accounts: Accounts) -> None:
    user = accounts.create_user("  Alice@Example.COM ", " Alice ", PASSWORD, is_admin=True)
    assert (user.email, user.name, user.group, user.is_admin) == (
        "alice@example.com",
        "Alice",
        "Admins",
        True,
    )
    assert user.permissions >= set(permissions.ALL)
    assert accounts.find_user("ALICE@example.com") == user
    assert accounts.find_user("bob@example.com") is None


def test_duplicate_email_is_a_conflict(accounts: Accounts, alice: UserInfo) -> None:
    with pytest.raises(ConflictError) as info:
        accounts.create_user("ALICE@example.com", "Other Alice", PASSWORD)
    assert info.value.status == 409
    assert info.value.body()["error"]["code"] == "conflict"
    assert "alice@example.com" in info.value.message


@pytest.mark.parametrize(
    "email", ["", "alice", "alice@", "@example.com", "a@b@example.com", "al ice@example.com"]
)
def test_bad_email_is_rejected(accounts: Accounts, email: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        accounts.create_user(email, "Alice", PASSWORD)
    assert info.value.param == "email"
    assert "email address" in info.value.message


@pytest.mark.parametrize("password", ["", "short", "7chars!"])
def test_short_password_is_rejected(accounts: Accounts, password: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        accounts.create_user("alice@example.com", "Alice", password)
    assert info.value.param == "password"
    assert "at least 8 characters" in info.value.message
    assert accounts.find_user("alice@example.com") is None


def test_overlong_password_is_rejected(accounts: Accounts) -> None:
    with pytest.raises(InvalidRequestError, match="at most 1024"):
        accounts.create_user("alice@example.com", "Alice", "x" * 1025)
    assert accounts.create_user("alice@example.com", "Alice", "x" * 1024).name == "Alice"


def test_empty_name_is_rejected(accounts: Accounts) -> None:
    with pytest.raises(InvalidRequestError) as info:
        accounts.create_user("alice@example.com", "  ", PASSWORD)
    assert info.value.param == "name"


def test_check_password(accounts: Accounts, alice: UserInfo) -> None:
    assert accounts.check_password("Alice@example.com", PASSWORD) == alice
    assert accounts.check_password("alice@example.com", PASSWORD + "!") is None
    assert accounts.check_password("alice@example.com", "") is None
    assert accounts.check_password("nobody@example.com", PASSWORD) is None


def test_password_is_stored_as_argon2_hash(db: peewee.Database, alice: UserInfo) -> None:
    [(stored,)] = raw(db, "SELECT password_hash FROM users WHERE id = ?", alice.id)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)


def test_outdated_password_hash_is_upgraded_on_login(
    db: peewee.Database, accounts: Accounts, alice: UserInfo
) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    raw(db, "UPDATE users SET password_hash = ? WHERE id = ?", weak, alice.id)
    assert accounts.check_password("alice@example.com", PASSWORD) == alice
    [(stored,)] = raw(db, "SELECT password_hash FROM users WHERE id = ?", alice.id)
    assert stored != weak
    assert not PasswordHasher().check_needs_rehash(stored)


def test_deleting_a_user_removes_the_account_and_its_tokens(
    db: peewee.Database, accounts: Accounts, alice: UserInfo
) -> None:
    token = accounts.create_token(alice.id)
    accounts.delete_user(alice.id)
    assert raw(db, "SELECT COUNT(*) FROM users WHERE id = ?", alice.id) == [(0,)]
    assert raw(db, "SELECT COUNT(*) FROM api_tokens WHERE user_id = ?", alice.id) == [(0,)]
    assert accounts.find_user("alice@example.com") is None
    assert accounts.check_password("alice@example.com", PASSWORD) is None
    assert accounts.verify_token(token) is None
    with pytest.raises(NotFoundError):
        accounts.create_token(alice.id)


# --- tokens ---------------------------------------------------------------------------------
def test_token_round_trip(accounts: Accounts, alice: UserInfo) -> None:
    token = accounts.create_token(alice.id, "laptop")
    assert token.startswith(TOKEN_PREFIX)
    assert len(token) > 40
    assert accounts.verify_token(token) == alice
    [info] = accounts.list_tokens(alice.id)
    assert (info.name, info.token) == ("laptop", token)
    assert info.created_at.tzinfo is dt.UTC
    assert token not in repr(info)


@pytest.mark.parametrize(
    "garble",
    [
        lambda t: "",
        lambda t: "kuwa-not-a-token",
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: t + "x",
        lambda t: t.upper(),
        lambda t: t + "é",
        lambda t: t * 100,
        lambda t: hashlib.sha256(t.encode()).hexdigest(),
    ],
)
def test_wrong_or_garbled_token_is_rejected(
    accounts: Accounts, alice: UserInfo, garble: Any
) -> None:
    token = accounts.create_token(alice.id)
    assert accounts.verify_token(garble(token)) is None
    assert accounts.verify_token(token) == alice


def test_revoked_token_is_rejected(accounts: Accounts, alice: UserInfo) -> None:
    keep = accounts.create_token(alice.id, "keep")
    token = accounts.create_token(alice.id, "drop")
    [drop] = [t for t in accounts.list_tokens(alice.id) if t.name == "drop"]
    accounts.revoke_token(alice.id, drop.id)
    assert accounts.verify_token(token) is None
    assert accounts.verify_token(keep) == alice
    assert [t.name for t in accounts.list_tokens(alice.id)] == ["keep"]
    accounts.revoke_token(alice.id, drop.id)  # again: nothing happens


def test_cannot_revoke_someone_elses_token(accounts: Accounts, alice: UserInfo) -> None:
    bob = accounts.create_user("bob@example.com", "Bob", PASSWORD)
    token = accounts.create_token(alice.id)
    [info] = accounts.list_tokens(alice.id)
    with pytest.raises(NotFoundError):
        accounts.revoke_token(bob.id, info.id)
    with pytest.raises(NotFoundError):
        accounts.revoke_token(alice.id, info.id + 1000)
    assert accounts.verify_token(token) == alice


def test_database_stores_digest_and_ciphertext_never_the_token(
    db: peewee.Database, accounts: Accounts, alice: UserInfo
) -> None:
    token = accounts.create_token(alice.id)
    rows = raw(db, "SELECT * FROM api_tokens")
    assert len(rows) == 1
    assert all(token not in str(value) for value in rows[0])
    [(digest, encrypted)] = raw(db, "SELECT digest, encrypted FROM api_tokens")
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert encrypted != token
    assert Fernet(derive_fernet_key(SECRET)).decrypt(encrypted.encode()).decode() == token


def test_ensure_token_returns_the_newest_live_token(accounts: Accounts, alice: UserInfo) -> None:
    first = accounts.ensure_token(alice.id)
    assert accounts.ensure_token(alice.id) == first
    assert len(accounts.list_tokens(alice.id)) == 1
    second = accounts.create_token(alice.id, "second")
    assert accounts.ensure_token(alice.id) == second
    [newest, _] = accounts.list_tokens(alice.id)
    accounts.revoke_token(alice.id, newest.id)
    assert accounts.ensure_token(alice.id) == first


def test_ensure_token_for_unknown_user(accounts: Accounts) -> None:
    with pytest.raises(NotFoundError):
        accounts.ensure_token(12345)


def test_second_instance_on_new_connection_verifies_token(
    settings: Settings, db: peewee.Database, accounts: Accounts, alice: UserInfo
) -> None:
    token = accounts.ensure_token(alice.id)
    close_database(db)
    other_db = open_database(settings)
    try:
        assert other_db is not db
        other = Accounts(other_db, SECRET)
        assert other.verify_token(token) == alice
        assert other.ensure_token(alice.id) == token
    finally:
        close_database(other_db)


def test_different_secret_cannot_read_tokens(
    db: peewee.Database, accounts: Accounts, alice: UserInfo
) -> None:
    token = accounts.create_token(alice.id)
    stranger = Accounts(db, "another secret")
    [info] = stranger.list_tokens(alice.id)  # listed (so it can be revoked) but unreadable
    assert info.token is None
    with pytest.raises(ConfigError, match="another secret key"):
        stranger.ensure_token(alice.id)
    # Verifying needs only the digest, so it still works.
    assert stranger.verify_token(token) == alice


def test_empty_secret_is_refused(db: peewee.Database) -> None:
    with pytest.raises(ConfigError):
        Accounts(db, "")


def test_last_used_is_written_at_most_once_a_minute(
    db: peewee.Database, accounts: Accounts, alice: UserInfo
) -> None:
    token = accounts.create_token(alice.id)
    [info] = accounts.list_tokens(alice.id)
    assert info.last_used_at is None
    accounts.verify_token(token)
    [info] = accounts.list_tokens(alice.id)
    assert info.last_used_at is not None

    recent = utc_naive(-dt.timedelta(seconds=30))
    raw(db, "UPDATE api_tokens SET last_used_at = ?", recent)
    accounts.verify_token(token)
    [(stored,)] = raw(db, "SELECT last_used_at FROM api_tokens")
    assert str(stored) == str(recent)  # not rewritten within the minute

    raw(db, "UPDATE api_tokens SET last_used_at = ?", utc_naive(-dt.timedelta(minutes=2)))
    accounts.verify_token(token)
    [info] = accounts.list_tokens(alice.id)
    assert info.last_used_at is not None
    assert info.last_used_at > dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)


def test_verify_token_is_one_indexed_select_plus_the_groups_permissions(
    db: peewee.Database, accounts: Accounts, alice: UserInfo
) -> None:
    token = accounts.create_token(alice.id)
    accounts.verify_token(token)  # first use: records last_used_at
    statements: list[str] = []
    db.query_hooks.append(lambda event: statements.append(event.sql))
    try:
        assert accounts.verify_token(token) == alice
        assert accounts.verify_token("kuwa-wrong") is None
    finally:
        db.query_hooks.clear()
    # A hit: the token joined with its user and group, then the group's permissions.
    # A miss: the join alone.
    assert len(statements) == 3
    assert all(sql.lstrip().upper().startswith("SELECT") for sql in statements)
    assert ['"digest" =' in sql for sql in statements] == [True, False, True]
    indexes = db.get_indexes("api_tokens")
    assert any(ix.unique and ix.columns == ["digest"] for ix in indexes)


# --- the database itself --------------------------------------------------------------------
def test_open_database_twice_keeps_data(settings: Settings, db: peewee.Database) -> None:
    Accounts(db, SECRET).create_user("alice@example.com", "Alice", PASSWORD)
    again = open_database(settings)
    try:
        assert Accounts(again, SECRET).find_user("alice@example.com") is not None
    finally:
        close_database(again)


def test_database_errors_are_translated(db: peewee.Database, accounts: Accounts) -> None:
    raw(db, "DROP TABLE api_tokens")
    with pytest.raises(KuwaError) as info:
        accounts.verify_token("kuwa-anything")
    assert type(info.value) is KuwaError
    assert info.value.code == "database_error"
    assert not isinstance(info.value.__cause__, KuwaError)


def test_sqlite_pragmas(sqlite_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "elsewhere", database_url=sqlite_url)
    db = open_database(settings)
    try:
        assert raw(db, "PRAGMA journal_mode") == [("wal",)]
        assert raw(db, "PRAGMA foreign_keys") == [(1,)]
        assert raw(db, "PRAGMA busy_timeout") == [(10000,)]
    finally:
        close_database(db)
    assert Path(sqlite_url.removeprefix("sqlite:///")).is_file()


def test_default_database_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "new" / "data")
    db = open_database(settings)
    try:
        Accounts(db, SECRET).create_user("alice@example.com", "Alice", PASSWORD)
    finally:
        close_database(db)
    assert (tmp_path / "new" / "data" / "kuwa.db").is_file()


@pytest.mark.parametrize(
    "url",
    ["mysql://root@127.0.0.1/kuwa", "sqlite:///", "postgresql://kuwa:s3cr3t-pw@127.0.0.1:1/kuwa"],
)
def test_bad_database_url_is_a_config_error(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_database(Settings(data_dir=tmp_path, database_url=url))
    assert "s3cr3t-pw" not in info.value.message


def test_admins_keep_tab_manage(db: peewee.Database) -> None:
    groups = Groups(db)
    admins = groups.get("Admins")
    with pytest.raises(InvalidRequestError, match="must keep tab_Manage"):
        groups.revoke("Admins", ["tab_Manage"])
    with pytest.raises(InvalidRequestError, match="must keep tab_Manage"):
        groups.set_permissions(admins.id, ["tab_Room"])
    with pytest.raises(InvalidRequestError, match="unknown permission"):
        groups.revoke("Users", ["tab_Nothing"])
    assert "tab_Manage" in groups.get("Admins").permissions


def test_seeded_groups_and_new_models_open_to_all(db: peewee.Database) -> None:
    groups = Groups(db)
    assert {g.name for g in groups.list_groups()} == {"Admins", "Users"}
    assert groups.get("Admins").permissions >= set(permissions.ALL)
    assert "tab_Manage" not in groups.get("Users").permissions
    assert "Room_read_access_to_api" in groups.get("Users").permissions
    Catalog(db).create("gpt-x", "GPT X")
    assert all("model:gpt-x" in g.permissions for g in groups.list_groups())
    assert groups.model_grants()["Users"] >= {"gpt-x"}


def test_user_search_treats_wildcards_as_text(accounts: Accounts) -> None:
    accounts.create_user("under_score@example.com", "Under Score", PASSWORD)
    accounts.create_user("plain@example.com", "Plain 100%", PASSWORD)
    assert [u.email for u in accounts.list_users("_")] == ["under_score@example.com"]
    assert [u.email for u in accounts.list_users("100%")] == ["plain@example.com"]
    assert [u.email for u in accounts.list_users("UNDER")] == ["under_score@example.com"]
