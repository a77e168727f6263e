"""Schema migrations: the models and the migrations agree; databases go up from empty, from the
previous release and from before migrations; two processes never both migrate; ``kuwa-cli db``.

Everything runs on SQLite and on PostgreSQL (``database_url`` and friends).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest
from click.testing import CliRunner, Result

from kuwa.accounts import Accounts, close_database, connect_database, open_database
from kuwa.accounts.migrate import (
    TABLE,
    Migration,
    Step,
    load_migrations,
    migrate,
    read_state,
    schema_lock,
)
from kuwa.accounts.migrations import m0001_initial as old
from kuwa.accounts.models import MODELS
from kuwa.accounts.schema import differences, inspect
from kuwa.cli import main
from kuwa.errors import ConfigError, KuwaError
from kuwa.settings import Settings
from tests.dbfixtures import create_postgres_database, drop_postgres_database, postgres_server_url

SECRET = "test-secret-key"


# --- helpers -------------------------------------------------------------------------------------
def settings_for(url: str, **kw: object) -> Settings:
    return Settings(database_url=url, secret_key=SECRET, **kw)  # type: ignore[arg-type]


@pytest.fixture
def connected(database_url: str) -> Iterator[peewee.Database]:
    """A connection to a fresh, empty database (no schema)."""
    db = connect_database(settings_for(database_url))
    yield db
    close_database(db)


@pytest.fixture(params=["sqlite", "postgres"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh, empty databases of one dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
        return
    names = [create_postgres_database(), create_postgres_database()]
    try:
        yield f"{postgres_server_url()}/{names[0]}", f"{postgres_server_url()}/{names[1]}"
    finally:
        for name in names:
            drop_postgres_database(name)


def from_models(url: str) -> peewee.Database:
    """What ``create_tables`` makes from the current models."""
    db = connect_database(settings_for(url))
    with db.bind_ctx(MODELS):
        db.create_tables(MODELS)
    return db


def counts(db: peewee.Database) -> dict[str, int]:
    return {
        t: db.execute_sql(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]  # noqa: S608
        for t in sorted(db.get_tables())
        if t != TABLE
    }


def make_previous_release_database(url: str) -> str:
    """A database as the previous release left it (``create_tables``, no migrations table),
    with a row in every table; returns the API token it holds. The previous release's models
    are the frozen copy in the first migration."""
    token = "kuwa-previous-release-token"
    db = connect_database(settings_for(url))
    with db.bind_ctx(old.MODELS):
        db.create_tables(old.MODELS)
        _fill_previous_release(token)
    close_database(db)
    return token


def _fill_previous_release(token: str) -> None:
    staff = old.Group.create(name="Staff", description="from the old release", max_jobs=3)
    old.GroupPermission.create(group=staff, permission="tab_Manage")
    alice = old.User.create(
        email="alice@example.com", name="Alice", password_hash="", group=staff, source="local"
    )
    old.ApiToken.create(
        user=alice, digest=hashlib.sha256(token.encode()).hexdigest(), encrypted="not-used"
    )
    old.ExternalIdentity.create(user=alice, provider="github", subject="42")
    old.ProviderKey.create(user=alice, provider="openai", encrypted="x")
    old.OneTimeCode.create(user=alice, purpose="verify", digest="d" * 64, expires_at=old.utcnow())
    old.Model.create(access_code="echo", name="Echo")
    old.AuditEvent.create(user=alice, actor="alice@example.com", action="login")
    old.SystemSetting.create(key="registration", value="closed")
    old.Bot.create(owner=alice, group=staff, name="Helper", base="echo")
    room = old.Room.create(owner=alice, title="Old chat", models='["echo"]')
    old.RoomMember.create(room=room, group=staff, role="viewer")
    prompt = old.Message.create(room=room, role="user", content="hello", author=alice)
    answer = old.Message.create(
        room=room, parent=prompt.id, role="assistant", model="echo", content="hello"
    )
    old.Feedback.create(message=answer, user=alice, rating=1)
    old.ArenaBattle.create(room=room, user=alice, model_a="echo", model_b="echo", outcome="tie")


def add_nickname(step: Step) -> None:
    """users.nickname NOT NULL DEFAULT '': on SQLite this rebuilds the users table, which
    api_tokens, rooms, … reference with ON DELETE CASCADE."""
    step.run(step.migrator.add_column("users", "nickname", peewee.CharField(default="")))


NICKNAME = Migration(
    len(load_migrations()) + 1, "users_nickname", "Users get a nickname.", add_nickname
)


# --- the models and the migrations agree ---------------------------------------------------------
def test_migrations_are_numbered_from_one_and_titled() -> None:
    known = load_migrations()
    assert [m.number for m in known] == list(range(1, len(known) + 1))
    assert known[0].name == "initial"
    assert all(m.title for m in known)


def test_a_gap_in_the_numbers_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "gappy_migrations"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("m0001_first", "m0003_third"):
        (package / f"{name}.py").write_text(f'"""{name}."""\n\ndef up(step):\n    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"without gaps; found \[1, 3\]"):
        load_migrations("gappy_migrations")


def test_migrated_schema_equals_what_the_models_create(two_urls: tuple[str, str]) -> None:
    """Add a model field without a migration and this names the table and column."""
    migrated = connect_database(settings_for(two_urls[0]))
    models = from_models(two_urls[1])
    try:
        migrate(migrated)
        problems = differences(inspect(models), inspect(migrated))
        assert not problems, "models and migrations differ:\n" + "\n".join(problems)
        assert len(inspect(migrated)) == len(MODELS)
    finally:
        close_database(migrated)
        close_database(models)


def test_the_comparison_names_a_column_and_an_index_without_a_migration(
    two_urls: tuple[str, str],
) -> None:
    migrated = connect_database(settings_for(two_urls[0]))
    models = from_models(two_urls[1])
    try:
        migrate(migrated)
        models.execute_sql("ALTER TABLE rooms ADD COLUMN pinned INTEGER")
        models.execute_sql("CREATE INDEX rooms_pinned ON rooms (pinned)")
        problems = differences(inspect(models), inspect(migrated))
        assert problems == [
            "rooms.pinned (INTEGER) is in the models but not in the migrations",
            "rooms: index rooms_pinned (pinned) is in the models but not in the migrations",
        ]
    finally:
        close_database(migrated)
        close_database(models)


# --- up from empty, from the previous release, from before migrations ---------------------------
def test_opening_an_empty_database_applies_every_migration(database_url: str) -> None:
    db = open_database(settings_for(database_url))
    try:
        state = read_state(db)
        assert [(a.number, a.how) for a in state.applied] == [
            (m.number, "applied") for m in load_migrations()
        ]
        assert state.pending == () and not state.unstamped
        assert db.execute_sql("SELECT COUNT(*) FROM groups").fetchone()[0] == 2  # seeded
    finally:
        close_database(db)
    again = open_database(settings_for(database_url))  # nothing left to do: no new rows
    try:
        assert len(read_state(again).applied) == len(load_migrations())
    finally:
        close_database(again)


def test_a_previous_release_database_is_stamped_and_keeps_its_data(database_url: str) -> None:
    token = make_previous_release_database(database_url)
    before = connect_database(settings_for(database_url))
    rows = counts(before)
    close_database(before)
    assert all(rows.values()), rows

    db = open_database(settings_for(database_url))
    try:
        state = read_state(db)
        assert (state.applied[0].name, state.applied[0].how) == ("initial", "stamped")
        assert state.pending == ()
        after = counts(db)
        assert {t: after[t] for t in rows} == rows  # nothing lost, groups not re-seeded
        assert not any(after[t] for t in after.keys() - rows.keys())  # later tables: empty
        user = Accounts(db, SECRET).verify_token(token)
        assert user is not None and (user.email, user.group) == ("alice@example.com", "Staff")
        models = inspect(db)
    finally:
        close_database(db)
    # ... and its schema is what the current models describe.
    url = database_url.replace("kuwa.db", "models.db")
    fresh_name = None
    if url.startswith("postgresql"):
        fresh_name = create_postgres_database()
        url = f"{postgres_server_url()}/{fresh_name}"
    expected = from_models(url)
    try:
        assert differences(inspect(expected), models, actual_as="stamped database") == []
    finally:
        close_database(expected)
        if fresh_name:
            drop_postgres_database(fresh_name)


def test_a_migration_that_rebuilds_a_table_keeps_the_rows_that_reference_it(
    database_url: str,
) -> None:
    """On SQLite adding a NOT NULL column rebuilds ``users``; with foreign keys on, dropping
    the old table would cascade into api_tokens, rooms, … The runner turns them off."""
    token = make_previous_release_database(database_url)
    db = connect_database(settings_for(database_url))
    try:
        rows = counts(db)
        outcomes = migrate(db, known=(*load_migrations(), NICKNAME))
        assert [(o.migration.number, o.action) for o in outcomes] == [
            (1, "stamped"),
            *((m.number, "applied") for m in load_migrations()[1:]),
            (NICKNAME.number, "applied"),
        ]
        after = counts(db)
        assert {t: after[t] for t in rows} == rows
        nick = db.execute_sql("SELECT nickname FROM users WHERE email = 'alice@example.com'")
        assert nick.fetchone()[0] == ""
        if isinstance(db, peewee.SqliteDatabase):
            assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1  # back on
            assert db.execute_sql("PRAGMA foreign_key_check").fetchall() == []
        digest = hashlib.sha256(token.encode()).hexdigest()  # hex: safe to inline
        found = db.execute_sql(f"SELECT COUNT(*) FROM api_tokens WHERE digest = '{digest}'")  # noqa: S608
        assert found.fetchone()[0] == 1
    finally:
        close_database(db)


def test_a_failing_migration_is_rolled_back_whole(database_url: str) -> None:
    def broken(step: Step) -> None:
        step.run(step.migrator.add_column("users", "half", peewee.IntegerField(null=True)))
        step.sql(sqlite="SELECT * FROM no_such_table", postgresql="SELECT * FROM no_such_table")

    number = len(load_migrations()) + 1
    known = (*load_migrations(), Migration(number, "broken", "Fails half-way.", broken))
    db = connect_database(settings_for(database_url))
    try:
        migrate(db)
        with pytest.raises(KuwaError, match=f"{number:04d} broken failed and was rolled back"):
            migrate(db, known=known)
        assert "half" not in {c.name for c in db.get_columns("users")}
        state = read_state(db, known)
        assert [m.number for m in state.pending] == [number]
    finally:
        close_database(db)


def test_a_database_that_differs_from_the_first_migration_is_not_stamped(sqlite_url: str) -> None:
    make_previous_release_database(sqlite_url)
    db = connect_database(settings_for(sqlite_url))
    db.execute_sql("ALTER TABLE rooms DROP COLUMN arena")
    db.execute_sql("DROP TABLE arena_battles")
    close_database(db)
    with pytest.raises(ConfigError) as err:
        open_database(settings_for(sqlite_url))
    assert "cannot be stamped" in err.value.message
    assert "table arena_battles is missing; rooms.arena is missing" in err.value.message
    db = connect_database(settings_for(sqlite_url))
    try:
        assert TABLE not in db.get_tables()  # refused, not half-done
    finally:
        close_database(db)


def test_with_auto_migrate_off_a_database_that_is_behind_is_refused(sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match=r"Run `kuwa-cli db migrate`"):
        open_database(settings_for(sqlite_url, db_auto_migrate=False))
    db = connect_database(settings_for(sqlite_url))
    try:
        assert db.get_tables() == []  # refused before changing anything
        migrate(db)
    finally:
        close_database(db)
    close_database(open_database(settings_for(sqlite_url, db_auto_migrate=False)))


def test_a_schema_migrated_by_a_newer_release_is_used_with_a_warning(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    close_database(open_database(settings_for(sqlite_url)))
    db = connect_database(settings_for(sqlite_url))
    db.execute_sql(
        "INSERT INTO schema_migrations (number, name, applied_at, how) "
        "VALUES (99, 'from_the_future', '2030-01-01 00:00:00', 'applied')"
    )
    close_database(db)
    caplog.set_level("WARNING", logger="kuwa.accounts.migrate")
    close_database(open_database(settings_for(sqlite_url)))
    assert "newer than this Kuwa" in caplog.text


# --- two processes at once -----------------------------------------------------------------------
def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUWA_")}
    return env | {"PYTHONUNBUFFERED": "1"}


def test_two_migrate_commands_at_once_apply_each_migration_once(database_url: str) -> None:
    """We hold the schema lock while two ``kuwa-cli db migrate`` start; both find 0001
    pending and wait; when we let go, one applies it and the other finds it done."""
    holder = connect_database(settings_for(database_url))
    children: list[subprocess.Popen[str]] = []
    try:
        with schema_lock(holder):
            for _ in range(2):
                children.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "kuwa", "db", "migrate"],
                        env=child_env() | {"KUWA_DATABASE_URL": database_url},
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                )
            waiting = [_read_until(child, "Applying 0001") for child in children]
            if isinstance(holder, peewee.PostgresqlDatabase):
                _until_two_wait_for_the_advisory_lock(holder)
            else:
                time.sleep(0.5)  # both are in BEGIN IMMEDIATE, waiting for the write lock
        # Read on where _read_until stopped (communicate() would skip what the pipe's buffer holds).
        watchdog = threading.Timer(120, lambda: [c.kill() for c in children])
        watchdog.start()
        try:
            outputs = [w + _rest(child) for w, child in zip(waiting, children, strict=True)]
        finally:
            watchdog.cancel()
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()
        close_database(holder)
    assert [c.returncode for c in children] == [0, 0], outputs
    results = sorted(
        "applied" if " applied in " in out else "other" if "by another process" in out else out
        for out in outputs
    )
    assert results == ["applied", "other"], outputs
    db = connect_database(settings_for(database_url))
    try:
        assert [a.number for a in read_state(db).applied] == [m.number for m in load_migrations()]
    finally:
        close_database(db)


def _rest(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    with child.stdout:
        rest = child.stdout.read()
    child.wait()
    return rest


def _read_until(child: subprocess.Popen[str], text: str, timeout: float = 60) -> str:
    assert child.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, f"no {text!r} in time: {seen}"
        char = child.stdout.read(1)
        assert char, f"the process ended before printing {text!r}: {seen}"
        seen += char
    return seen


def _until_two_wait_for_the_advisory_lock(db: peewee.Database) -> None:
    deadline = time.monotonic() + 30
    query = (
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    other = 0
    while time.monotonic() < deadline:
        # Ask on a connection of its own: ours is inside the transaction holding the lock.
        other = _count_on_new_connection(db, query)
        if other == 2:
            return
        time.sleep(0.05)
    raise AssertionError(f"{other} processes wait for the lock, not 2")


def _count_on_new_connection(db: peewee.Database, query: str) -> int:
    import psycopg2

    conn = psycopg2.connect(dbname=db.database, **db.connect_params)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            row = cur.fetchone()
            assert row is not None
            return int(row[0])
    finally:
        conn.close()


OPEN = (
    "import sys; from kuwa.accounts import open_database, close_database; "
    "from kuwa.settings import Settings; "
    "close_database(open_database(Settings(database_url=sys.argv[1], secret_key='k')))"
)


def test_two_processes_starting_on_an_empty_database_at_once(database_url: str) -> None:
    """What two gateways do when they start together: both open (migrate, seed) at once."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN, database_url],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [c.returncode for c in children] == [0, 0], outputs
    db = connect_database(settings_for(database_url))
    try:
        assert [a.number for a in read_state(db).applied] == [m.number for m in load_migrations()]
        names = [r[0] for r in db.execute_sql("SELECT name FROM groups ORDER BY name")]
        assert names == ["Admins", "Users"]
    finally:
        close_database(db)


def test_a_gateway_refuses_to_start_on_a_database_that_is_behind(sqlite_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kuwa", "gateway", "start", "--port", "9"],
        env=child_env()
        | {
            "KUWA_DATABASE_URL": sqlite_url,
            "KUWA_DB_AUTO_MIGRATE": "false",
            "KUWA_SECRET_KEY": "k",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Error: cannot open database" in done.stderr
    assert "Run `kuwa-cli db migrate` with the same database" in done.stderr


# --- kuwa-cli db ---------------------------------------------------------------------------------
@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> str:
    for name in [k for k in os.environ if k.startswith("KUWA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KUWA_DATABASE_URL", database_url)
    monkeypatch.setenv("KUWA_DATA_DIR", str(tmp_path / "data"))
    return database_url


def cli(*args: str, code: int = 0) -> str:
    result: Result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"kuwa-cli {' '.join(args)} raised") from result.exception
    assert result.exit_code == code, result.output
    return result.output


def test_db_migrate_and_status_print_what_they_do(cli_env: str) -> None:
    head = load_migrations()[-1].number
    out = cli("db", "status")
    assert "Schema: empty (no migrations applied); newest migration: " in out
    assert "Pending:\n  0001 initial: Every table of the first release" in out

    out = cli("db", "migrate", "--dry-run")
    assert "Would apply 0001 initial: Every table" in out
    assert out.rstrip().endswith("Dry run: nothing was changed.")
    db = connect_database(settings_for(cli_env))
    assert db.get_tables() == []
    close_database(db)

    out = cli("db", "migrate", "--to", "1")
    assert "Applying 0001 initial: Every table" in out and " … applied in " in out
    out = cli("db", "migrate")
    assert f"the schema is at {head:04d}, the newest this Kuwa knows" in out

    out = cli("db", "status")
    lines = out.splitlines()
    assert lines[1] == f"Schema: at {head:04d}; newest migration: {head:04d}"
    assert lines[2].split() == ["number", "name", "applied", "at", "(UTC)", "how"]
    number, name, day, _, how = lines[3].split()
    assert (number, name, how) == ("0001", "initial", "applied") and day.startswith("20")
    assert lines[-1].startswith("Pending: none")

    out = cli("db", "migrate", "--to", "9999", code=1)
    assert "Error: there is no migration 9999" in out


def test_db_migrate_stamps_a_database_from_before_migrations(cli_env: str) -> None:
    make_previous_release_database(cli_env)
    out = cli("db", "status")
    assert "Schema: from before migrations (not stamped yet)" in out
    assert "They match migration 0001: `kuwa-cli db migrate` stamps them." in out
    out = cli("db", "migrate")
    assert "Stamping 0001 initial: Every table" in out and " … stamped in " in out
    out = cli("db", "status")
    assert any(
        line.split()[:2] == ["0001", "initial"] and line.endswith("stamped")
        for line in out.splitlines()
    )


def test_db_commands_hide_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("KUWA_")]:
        monkeypatch.delenv(name)
    out = cli("db", "status", "--database-url", "postgresql://kuwa:s3cret@127.0.0.1:1/x", code=1)
    assert "s3cret" not in out and "kuwa:***@127.0.0.1:1" in out


# --- backup and restore, as docs/operations.md tells ------------------------------------------
def test_sqlite_backup_while_open_and_restore(tmp_path: Path, sqlite_url: str) -> None:
    live = open_database(settings_for(sqlite_url))
    try:
        Accounts(live, SECRET).create_user("keep@example.com", "Keep", "correct horse battery")
        path = sqlite_url.removeprefix("sqlite:///")
        backup = tmp_path / "kuwa-backup.db"
        subprocess.run(["sqlite3", path, f".backup '{backup}'"], check=True, timeout=60)
    finally:
        close_database(live)
    restored = tmp_path / "restored" / "kuwa.db"
    restored.parent.mkdir()
    restored.write_bytes(backup.read_bytes())
    _check_restored(f"sqlite:///{restored}")


def test_postgres_dump_and_restore(postgres_url: str) -> None:
    live = open_database(settings_for(postgres_url))
    try:
        Accounts(live, SECRET).create_user("keep@example.com", "Keep", "correct horse battery")
    finally:
        close_database(live)
    target = create_postgres_database()
    try:
        with tempfile.TemporaryDirectory() as folder:
            dump = Path(folder) / "kuwa.dump"
            subprocess.run(
                ["pg_dump", "--format=custom", f"--file={dump}", postgres_url],
                check=True,
                timeout=120,
            )
            url = f"{postgres_server_url()}/{target}"
            subprocess.run(
                ["pg_restore", "--no-owner", f"--dbname={url}", str(dump)], check=True, timeout=120
            )
        _check_restored(url)
    finally:
        drop_postgres_database(target)


def _check_restored(url: str) -> None:
    db = open_database(settings_for(url, db_auto_migrate=False))  # nothing left to migrate
    try:
        assert Accounts(db, SECRET).find_user("keep@example.com") is not None
        assert [a.number for a in read_state(db).applied] == [m.number for m in load_migrations()]
    finally:
        close_database(db)
