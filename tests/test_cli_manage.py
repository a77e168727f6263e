"""``kuwa-cli user|group|model`` management commands, checked against the database they change.

Commands run in-process with click's CliRunner (one real subprocess checks the entry point),
once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kuwa.accounts import Store, close_database, open_database, permissions
from kuwa.cli import main
from kuwa.settings import Settings

PASSWORD = "correct horse battery"
NEW_PASSWORD = "tr0ub4dor&3-again"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [k for k in os.environ if k.startswith("KUWA_")]:
        monkeypatch.delenv(name)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("KUWA_DATA_DIR", str(data_dir))
    monkeypatch.setenv("KUWA_DATABASE_URL", database_url)
    return Settings(data_dir=data_dir, database_url=database_url)


@contextmanager
def opened(settings: Settings) -> Iterator[Store]:
    db = open_database(settings)
    try:
        yield Store.over(db, settings.load_secret_key())
    finally:
        close_database(db)


def cli(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), input=input)
    # Bad input ends in click's exit (SystemExit), never in an exception of ours.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"kuwa-cli {' '.join(args)} raised") from result.exception
    return result


def ok(*args: str, input: str | None = None) -> Result:
    result = cli(*args, input=input)
    assert result.exit_code == 0, result.output
    return result


def fails(*args: str, message: str, input: str | None = None) -> Result:
    result = cli(*args, input=input)
    assert result.exit_code == 1, result.output
    assert f"Error: {message}" in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    return result


def create_user(email: str = "alice@example.com", *extra: str) -> None:
    ok("user", "create", "--email", email, "--name", "Alice", "--password", PASSWORD, *extra)


def audit(settings: Settings, action: str) -> list[tuple[str, str, str]]:
    with opened(settings) as store:
        entries = store.audit.query(action=action)
    return [(e.actor, e.target, e.detail) for e in entries]


# --- users ------------------------------------------------------------------------------------
def test_user_create_in_a_group(settings: Settings) -> None:
    ok("group", "create", "Staff", "--permission", "tab_Room")
    done = ok(
        "user", "create", "--email", "bob@example.com", "--name", "Bob",
        "--group", "Staff", input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    assert "bob@example.com" in done.stderr
    assert "Staff" in done.stderr
    with opened(settings) as store:
        user = store.accounts.find_user("bob@example.com")
        assert store.accounts.check_password("bob@example.com", PASSWORD) is not None
    assert user is not None
    assert (user.group, user.permissions) == ("Staff", frozenset({"tab_Room"}))
    assert audit(settings, "account_created") == [("cli", "bob@example.com", "group Staff")]


def test_user_create_errors(settings: Settings) -> None:
    result = fails(
        "user", "create", "--email", "bob@example.com", "--name", "Bob", "--admin",
        "--group", "Users", message="--admin and --group cannot be used together",
    )  # fmt: skip
    assert "Password" not in result.output  # refused before asking
    fails(
        "user", "create", "--email", "bob@example.com", "--name", "Bob",
        "--password", PASSWORD, "--group", "Nope", message="there is no group named 'Nope'",
    )  # fmt: skip
    with opened(settings) as store:
        assert store.accounts.find_user("bob@example.com") is None
    assert audit(settings, "account_created") == []


def test_user_set_group(settings: Settings) -> None:
    create_user()
    ok("group", "create", "Staff", "--permission", "tab_Room")
    done = ok("user", "set-group", "--email", "Alice@Example.com", "Staff")
    assert "from group Users to Staff" in done.stderr
    with opened(settings) as store:
        user = store.accounts.find_user("alice@example.com")
    assert user is not None
    assert user.group == "Staff"
    assert audit(settings, "user_group_changed") == [("cli", "alice@example.com", "Users -> Staff")]
    fails("user", "set-group", "--email", "alice@example.com", "Nope", message="there is no group")
    fails("user", "set-group", "--email", "bob@example.com", "Staff", message="no user with email")


def test_user_delete_removes_the_user_and_tokens(settings: Settings) -> None:
    create_user()
    token = ok("user", "token", "--email", "alice@example.com").stdout.strip()
    refused = cli("user", "delete", "--email", "alice@example.com", input="n\n")
    assert refused.exit_code == 1
    assert "Aborted" in refused.stderr
    with opened(settings) as store:
        assert store.accounts.find_user("alice@example.com") is not None
    done = ok("user", "delete", "--email", "alice@example.com", input="y\n")
    assert "deleted user alice@example.com" in done.stderr
    with opened(settings) as store:
        assert store.accounts.find_user("alice@example.com") is None
        assert store.accounts.verify_token(token) is None
        assert store.db.execute_sql("SELECT count(*) FROM api_tokens").fetchone()[0] == 0
    assert [(a, t) for a, t, _ in audit(settings, "user_deleted")] == [("cli", "alice@example.com")]
    fails("user", "delete", "--email", "alice@example.com", "--yes", message="no user with email")


def test_user_delete_yes_does_not_ask(settings: Settings) -> None:
    create_user()
    done = ok("user", "delete", "--email", "alice@example.com", "--yes")
    assert "?" not in done.output
    with opened(settings) as store:
        assert store.accounts.count_users() == 0


def test_user_list(settings: Settings) -> None:
    create_user()
    create_user("bob@example.com", "--admin")
    lines = ok("user", "list").stdout.splitlines()
    assert lines[0].split() == ["EMAIL", "NAME", "GROUP", "SOURCE"]
    assert [line.split() for line in lines[1:]] == [
        ["alice@example.com", "Alice", "Users", "local"],
        ["bob@example.com", "Alice", "Admins", "local"],
    ]
    found = ok("user", "list", "--search", "BOB").stdout.splitlines()
    assert [line.split()[0] for line in found] == ["EMAIL", "bob@example.com"]


def test_user_set_password(settings: Settings) -> None:
    create_user()
    ok("user", "set-password", "--email", "alice@example.com", "--password", NEW_PASSWORD)
    with opened(settings) as store:
        assert store.accounts.check_password("alice@example.com", PASSWORD) is None
        user = store.accounts.check_password("alice@example.com", NEW_PASSWORD)
    assert user is not None
    assert not user.must_change_password
    prompted = ok(
        "user", "set-password", "--email", "alice@example.com", "--must-change",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    assert PASSWORD not in prompted.output  # hidden input
    with opened(settings) as store:
        user = store.accounts.check_password("alice@example.com", PASSWORD)
    assert user is not None
    assert user.must_change_password
    events = audit(settings, "password_set")
    assert [(a, t) for a, t, _ in events] == [("cli", "alice@example.com")] * 2
    assert not any(PASSWORD in d or NEW_PASSWORD in d for _, _, d in events)
    fails(
        "user", "set-password", "--email", "bob@example.com", "--password", NEW_PASSWORD,
        message="no user with email bob@example.com",
    )  # fmt: skip
    fails(
        "user", "set-password", "--email", "alice@example.com", "--password", "short",
        message="the password must be at least 8",
    )  # fmt: skip


# --- groups -----------------------------------------------------------------------------------
def test_group_create(settings: Settings) -> None:
    done = ok(
        "group", "create", "Staff", "--permission", "tab_Room", "--permission", "tab_Store",
        "--model", "echo", "--description", "Our staff", "--invite-code", "join-staff",
    )  # fmt: skip
    assert "created group Staff with 3 permission(s)" in done.stderr
    with opened(settings) as store:
        group = store.groups.get("Staff")
        assert store.groups.by_invite_code("join-staff") == group
    assert group.permissions == {"tab_Room", "tab_Store", "model:echo"}
    assert group.description == "Our staff"
    assert [(a, t) for a, t, _ in audit(settings, "group_created")] == [("cli", "Staff")]
    fails("group", "create", "Staff", message="a group named 'Staff'")
    fails("group", "create", "Other", "--permission", "tab_Nope", message="unknown permission")
    with opened(settings) as store:
        assert [g.name for g in store.groups.list_groups()] == ["Admins", "Staff", "Users"]


def test_group_grant_show_and_revoke(settings: Settings) -> None:
    ok("group", "create", "Staff")
    done = ok("group", "grant", "Staff", "model:echo", "tab_Room", "--model", "llama")
    assert "granted 3 permission(s)" in done.stderr
    assert ok("group", "show", "Staff").stdout.splitlines() == [
        "tab_Room",
        "model:echo",
        "model:llama",
    ]
    again = ok("group", "grant", "Staff", "tab_Room")
    assert "granted 0 permission(s) to group Staff (1 already granted)" in again.stderr
    ok("group", "revoke", "Staff", "--model", "llama", "tab_Room")
    assert ok("group", "show", "Staff").stdout == "model:echo\n"
    with opened(settings) as store:
        assert store.groups.get("Staff").permissions == {"model:echo"}
    assert audit(settings, "group_granted") == [
        ("cli", "Staff", "tab_Room, model:echo, model:llama")
    ]
    assert audit(settings, "group_revoked") == [("cli", "Staff", "tab_Room, model:llama")]
    fails("group", "grant", "Nope", "tab_Room", message="there is no group named 'Nope'")
    fails("group", "grant", "Staff", "tab_Nope", message="unknown permission 'tab_Nope'")
    fails("group", "revoke", "Staff", "model:", message="unknown permission 'model:'")
    fails("group", "show", "Nope", message="there is no group named 'Nope'")
    assert cli("group", "grant", "Staff").exit_code == 2  # nothing to grant


def test_group_show_lists_every_admin_permission(settings: Settings) -> None:
    assert ok("group", "show", "Admins").stdout.splitlines() == list(permissions.ALL)


def test_group_list_delete_and_restore(settings: Settings) -> None:
    ok("group", "create", "Staff", "--permission", "tab_Room", "--invite-code", "abc")
    create_user("alice@example.com", "--group", "Staff")
    rows = [line.split() for line in ok("group", "list").stdout.splitlines()]
    assert rows[0] == ["NAME", "MEMBERS", "INVITE", "CODE", "PERMISSIONS"]
    assert rows[2] == ["Staff", "1", "abc", "1"]
    assert [r[0] for r in rows[1:]] == ["Admins", "Staff", "Users"]
    ok("group", "delete", "Staff")
    with opened(settings) as store:
        assert store.groups.get("Staff", include_deleted=True).deleted_at is not None
        user = store.accounts.find_user("alice@example.com")
    assert user is not None
    assert user.permissions == frozenset()
    assert [line.split()[0] for line in ok("group", "list").stdout.splitlines()] == [
        "NAME",
        "Admins",
        "Users",
    ]
    listed = ok("group", "list", "--deleted").stdout.splitlines()
    assert listed[2].split() == ["Staff", "1", "-", "1", "yes"]
    fails("group", "delete", "Staff", message="there is no group named 'Staff'")
    ok("group", "restore", "Staff")
    with opened(settings) as store:
        assert store.groups.get("Staff").deleted_at is None
    fails("group", "restore", "Staff", message="group Staff is not deleted")
    fails("group", "restore", "Nope", message="there is no group named 'Nope'")
    fails("group", "delete", "Admins", message="the Admins group cannot be deleted")
    assert audit(settings, "group_deleted") == [("cli", "Staff", "1 member(s)")]
    assert audit(settings, "group_restored") == [("cli", "Staff", "")]


# --- models -----------------------------------------------------------------------------------
def test_model_add_list_set_delete_restore(settings: Settings, tmp_path: Path) -> None:
    ok("model", "add", "echo", "--name", "Echo", "--description", "Says it back", "--order", "2")
    ok("model", "add", "llama", "--disabled")
    rows = [line.split() for line in ok("model", "list").stdout.splitlines()]
    assert rows == [
        ["ACCESS", "CODE", "NAME", "ENABLED", "ORDER"],
        ["llama", "llama", "no", "0"],
        ["echo", "Echo", "yes", "2"],
    ]
    with opened(settings) as store:
        echo = store.catalog.get("echo")
        assert "model:echo" in store.groups.get("Users").permissions  # open to every group
    assert (echo.name, echo.description, echo.enabled) == ("Echo", "Says it back", True)
    fails("model", "add", "echo", message="a model with access code 'echo' already exists")
    fails("model", "add", "bad code", message="'bad code' is not a valid access code")

    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("SYSTEM You are terse.\n", encoding="utf-8")
    ok("model", "set", "llama", "--enable", "--order", "5", "--name", "Llama")
    ok("model", "set", "echo", "--disable", "--modelfile", str(modelfile))
    with opened(settings) as store:
        llama, echo = store.catalog.get("llama"), store.catalog.get("echo")
    assert (llama.name, llama.enabled, llama.order) == ("Llama", True, 5)
    assert (echo.enabled, echo.modelfile) == (False, "SYSTEM You are terse.\n")
    fails("model", "set", "nope", "--enable", message="there is no model 'nope'")
    assert cli("model", "set", "echo").exit_code == 2  # nothing to change

    ok("model", "delete", "echo")
    with opened(settings) as store:
        assert [m.access_code for m in store.catalog.list_models()] == ["llama"]
    assert "echo" not in ok("model", "list").stdout
    assert "yes" in ok("model", "list", "--deleted").stdout.splitlines()[-1]
    fails("model", "delete", "echo", message="there is no model 'echo'")
    ok("model", "restore", "echo")
    with opened(settings) as store:
        assert store.catalog.get("echo").enabled is False
    fails("model", "restore", "echo", message="model echo is not deleted")
    fails("model", "restore", "nope", message="there is no model 'nope'")

    assert [t for _, t, _ in audit(settings, "model_created")] == ["llama", "echo"]
    assert audit(settings, "model_updated") == [
        ("cli", "echo", "enabled, modelfile"),
        ("cli", "llama", "name, enabled, order"),
    ]
    assert audit(settings, "model_deleted") == [("cli", "echo", "")]
    assert audit(settings, "model_restored") == [("cli", "echo", "")]


def test_every_change_is_audited_as_the_cli(settings: Settings) -> None:
    create_user()
    ok("user", "set-password", "--email", "alice@example.com", "--password", NEW_PASSWORD)
    ok("group", "create", "Staff")
    ok("group", "grant", "Staff", "tab_Room")
    ok("user", "set-group", "--email", "alice@example.com", "Staff")
    ok("model", "add", "echo")
    ok("user", "delete", "--email", "alice@example.com", "--yes")
    with opened(settings) as store:
        entries = store.audit.query()
    assert {e.action for e in entries} == {
        "account_created",
        "password_set",
        "group_created",
        "group_granted",
        "user_group_changed",
        "model_created",
        "user_deleted",
    }
    assert {e.actor for e in entries} == {"cli"}
    assert all(e.ok for e in entries)
    assert not any(PASSWORD in e.detail or NEW_PASSWORD in e.detail for e in entries)


def test_entry_point_grant_then_show(settings: Settings) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kuwa", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    granted = run("group", "grant", "Users", "model:echo")
    assert granted.returncode == 0, granted.stderr
    shown = run("group", "show", "Users")
    assert "model:echo" in shown.stdout.splitlines()
    missing = run("group", "show", "Nope")
    assert missing.returncode == 1
    assert missing.stderr == "Error: there is no group named 'Nope'\n"
