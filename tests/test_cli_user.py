"""``kuwa-cli user``, run as a real subprocess against real databases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kuwa.accounts import Accounts, UserInfo, close_database, open_database
from kuwa.settings import Settings

PASSWORD = "correct horse battery"


def run_user(
    *args: str, env: dict[str, str], input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kuwa", "user", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KUWA_")}
    clean["KUWA_DATA_DIR"] = str(data_dir)
    return clean


def verify(settings: Settings, token: str) -> UserInfo | None:
    db = open_database(settings)
    try:
        return Accounts(db, settings.load_secret_key()).verify_token(token)
    finally:
        close_database(db)


def create_alice(env: dict[str, str], *extra: str) -> None:
    done = run_user(
        "create", "--email", "alice@example.com", "--name", "Alice", "--password", PASSWORD,
        *extra, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "alice@example.com" in done.stderr
    assert PASSWORD not in done.stderr


def test_create_then_token_prints_one_verifiable_line(env: dict[str, str], data_dir: Path) -> None:
    create_alice(env)
    done = run_user("token", "--email", "Alice@Example.com", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert done.stdout == lines[0] + "\n"
    user = verify(Settings(data_dir=data_dir), lines[0])
    assert user is not None
    assert (user.email, user.name, user.is_admin) == ("alice@example.com", "Alice", False)
    again = run_user("token", "--email", "alice@example.com", env=env)
    assert again.stdout == done.stdout


def test_options_come_from_environment(env: dict[str, str], data_dir: Path) -> None:
    env |= {
        "KUWA_USER_EMAIL": "root@localhost",
        "KUWA_USER_NAME": "Root",
        "KUWA_USER_PASSWORD": PASSWORD,
        "KUWA_USER_ADMIN": "1",
    }
    created = run_user("create", env=env)
    assert created.returncode == 0, created.stderr
    assert "admin" in created.stderr
    done = run_user("token", env=env)
    assert done.returncode == 0, done.stderr
    user = verify(Settings(data_dir=data_dir), done.stdout.strip())
    assert user is not None
    assert (user.email, user.is_admin) == ("root@localhost", True)


def test_password_prompt(env: dict[str, str], data_dir: Path) -> None:
    done = run_user(
        "create", "--email", "bob@example.com", "--name", "Bob",
        env=env, input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    settings = Settings(data_dir=data_dir)
    db = open_database(settings)
    try:
        accounts = Accounts(db, settings.load_secret_key())
        assert accounts.check_password("bob@example.com", PASSWORD) is not None
    finally:
        close_database(db)


def test_token_for_unknown_email_fails(env: dict[str, str]) -> None:
    done = run_user("token", "--email", "nobody@example.com", env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "no user with email nobody@example.com" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--email", "alice@example.com", "--password", PASSWORD), "already exists"),
        (("--email", "not-an-email", "--password", PASSWORD), "not an email address"),
        (("--email", "carol@example.com", "--password", "short"), "at least 8"),
    ],
)
def test_create_errors_exit_1_with_message(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    create_alice(env)
    done = run_user("create", "--name", "Someone", *args, env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_postgres_by_database_url(env: dict[str, str], data_dir: Path, postgres_url: str) -> None:
    env["KUWA_DATABASE_URL"] = postgres_url
    create_alice(env, "--admin")
    done = run_user("token", "--email", "alice@example.com", env=env)
    assert done.returncode == 0, done.stderr
    user = verify(Settings(data_dir=data_dir, database_url=postgres_url), done.stdout.strip())
    assert user is not None
    assert user.is_admin
    assert not (data_dir / "kuwa.db").exists()


def test_works_while_server_holds_sqlite_open(env: dict[str, str], data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir)
    server = open_database(settings)  # stands in for a running `kuwa-cli up`
    try:
        Accounts(server, settings.load_secret_key()).create_user("bob@example.com", "Bob", PASSWORD)
        # A read transaction keeps its snapshot (and, without WAL, a lock that blocks writers).
        server.execute_sql("BEGIN")
        assert server.execute_sql("SELECT count(*) FROM users").fetchone() == (1,)
        create_alice(env)
        done = run_user("token", "--email", "alice@example.com", env=env)
        assert done.returncode == 0, done.stderr
        server.execute_sql("COMMIT")
        assert verify(settings, done.stdout.strip()) is not None
    finally:
        close_database(server)
