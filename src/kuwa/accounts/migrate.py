"""Apply Kuwa's numbered schema migrations (:mod:`kuwa.accounts.migrations`), each once.

The table ``schema_migrations`` records every migration applied to a database: its number,
name, when (naive UTC) and how (``applied``, or ``stamped`` for a database whose tables were
already there). Migrations only go forward.

Each migration runs in its own transaction, together with the row that records it, under a
lock: a PostgreSQL advisory transaction lock, or SQLite's write lock (``BEGIN IMMEDIATE``).
Under the lock the runner looks again at what is applied, so when two processes start at once
(two gateways) one applies the migration and the other finds it done. On SQLite, foreign keys
are switched off for the transaction (a table rebuild must not cascade deletes) and checked
with ``PRAGMA foreign_key_check`` before the commit.

A database made by ``create_tables`` before migrations existed (Kuwa's tables, no
``schema_migrations``) is checked against migration 0001's tables and stamped as 0001; a
database that does not match is refused with the differences, never changed.

:func:`ensure_schema` is what every process does when it opens the database
(``KUWA_DB_AUTO_MIGRATE``): apply what is pending, or refuse with a message that says to run
``kuwa-cli db migrate``.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import logging
import pkgutil
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import peewee
from playhouse import migrate as playhouse_migrate

from kuwa.accounts.migration_step import Step, execute_sql
from kuwa.accounts.schema import column_differences
from kuwa.errors import ConfigError, KuwaError

log = logging.getLogger(__name__)

PACKAGE = "kuwa.accounts.migrations"
TABLE = "schema_migrations"
# PostgreSQL advisory lock key ("kuwa" in ASCII, then 1); advisory locks are per database.
LOCK_KEY = 0x6B757761_00000001
# SQLite: how long to wait for another process's migration to let go of the write lock.
LOCK_WAIT_MS = 10 * 60 * 1000
BASELINE_NAME = "initial"  # migration 0001, what a database from before migrations is stamped as
_MODULE_NAME = re.compile(r"^m(\d{4})_([a-z0-9_]+)$")


class _Record(peewee.Model):
    number = peewee.IntegerField(primary_key=True)
    name = peewee.CharField(max_length=100)
    applied_at = peewee.DateTimeField()
    how = peewee.CharField(max_length=16)  # applied, stamped

    class Meta:
        table_name = TABLE


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    title: str  # the first line of the module's docstring
    up: Callable[[Step], None]

    @property
    def label(self) -> str:
        return f"{self.number:04d} {self.name}"


@dataclass(frozen=True, slots=True)
class Applied:
    number: int
    name: str
    applied_at: dt.datetime  # naive UTC
    how: str  # applied, stamped


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database's schema stands against the migrations this Kuwa knows."""

    known: tuple[Migration, ...]
    applied: tuple[Applied, ...]
    unstamped: bool  # Kuwa's tables from before migrations, no schema_migrations yet

    @property
    def current(self) -> int:
        """The highest applied number (0: none)."""
        return max((a.number for a in self.applied), default=0)

    @property
    def head(self) -> int:
        return self.known[-1].number if self.known else 0

    @property
    def pending(self) -> tuple[Migration, ...]:
        done = {a.number for a in self.applied}
        return tuple(m for m in self.known if m.number not in done)

    @property
    def newer(self) -> tuple[Applied, ...]:
        """Applied by a newer Kuwa: numbers this one does not know."""
        known = {m.number for m in self.known}
        return tuple(a for a in self.applied if a.number not in known)

    def describe(self) -> str:
        if self.unstamped:
            return "from before migrations (not stamped yet)"
        if not self.applied:
            return "empty (no migrations applied)"
        return f"at {self.current:04d}"


@dataclass(frozen=True, slots=True)
class Outcome:
    migration: Migration
    action: str  # applied; stamped; skipped (another process applied it first)
    seconds: float


# --- the migrations this Kuwa knows ----------------------------------------------------------
@functools.cache
def load_migrations(package: str = PACKAGE) -> tuple[Migration, ...]:
    """Every ``mNNNN_name`` module of ``package``, by number; numbers must run 1, 2, 3, …"""
    pkg = importlib.import_module(package)
    found: list[Migration] = []
    for info in pkgutil.iter_modules(pkg.__path__):
        match = _MODULE_NAME.match(info.name)
        if match is None:
            if info.name.startswith("m"):
                raise ConfigError(f"{package}.{info.name}: a migration is named mNNNN_name")
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        up = getattr(module, "up", None)
        doc = (module.__doc__ or "").strip()
        if not callable(up) or not doc:
            raise ConfigError(f"migration {info.name} needs a docstring and an up(step) function")
        found.append(Migration(int(match.group(1)), match.group(2), doc.splitlines()[0], up))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if numbers != list(range(1, len(found) + 1)):
        raise ConfigError(f"migration numbers must be 1, 2, 3, … without gaps; found {numbers}")
    return tuple(found)


def dialect_of(db: peewee.Database) -> str:
    if isinstance(db, peewee.SqliteDatabase):
        return "sqlite"
    if isinstance(db, peewee.PostgresqlDatabase):
        return "postgresql"
    raise ConfigError(f"unsupported database {type(db).__name__}")


# --- reading the state ---------------------------------------------------------------------
def read_state(db: peewee.Database, known: Sequence[Migration] | None = None) -> SchemaState:
    migrations = tuple(known) if known is not None else load_migrations()
    tables = set(db.get_tables())
    if TABLE not in tables:
        return SchemaState(migrations, (), unstamped=bool(tables & _baseline_tables()))
    return SchemaState(migrations, _applied(db), unstamped=False)


def _applied(db: peewee.Database) -> tuple[Applied, ...]:
    query = _Record.select().order_by(_Record.number).bind(db)
    return tuple(Applied(r.number, r.name, r.applied_at, r.how) for r in query)


def _baseline_models() -> tuple[type[peewee.Model], ...]:
    from kuwa.accounts.migrations import m0001_initial

    return m0001_initial.MODELS


def _baseline_tables() -> set[str]:
    return {m._meta.table_name for m in _baseline_models()}


def baseline_differences(db: peewee.Database) -> list[str]:
    """How a database from before migrations differs from migration 0001's tables."""
    return column_differences(db, _baseline_models())


def plan(
    db: peewee.Database, *, to: int | None = None, known: Sequence[Migration] | None = None
) -> list[tuple[Migration, str]]:
    """What :func:`migrate` would do now: ``(migration, "apply" | "stamp")`` in order.

    Raises ConfigError where it would refuse (a bad ``to``, an unstamped database whose
    tables do not match 0001)."""
    state = read_state(db, known)
    todo = _todo(state, to)
    if state.unstamped and todo:
        _check_baseline(db)
    return [(m, "stamp" if state.unstamped and m.number == 1 else "apply") for m in todo]


def _todo(state: SchemaState, to: int | None) -> tuple[Migration, ...]:
    if to is not None:
        if to not in {m.number for m in state.known}:
            raise ConfigError(
                f"there is no migration {to:04d}; the newest this Kuwa knows is {state.head:04d}"
            )
        if to < state.current:
            raise ConfigError(
                f"the schema is already at {state.current:04d}; migrations only go forward"
            )
    return tuple(m for m in state.pending if to is None or m.number <= to)


def _check_baseline(db: peewee.Database) -> None:
    problems = baseline_differences(db)
    if problems:
        raise ConfigError(
            "this database has Kuwa tables from before migrations, but they differ from the "
            "schema of migration 0001, so it cannot be stamped: "
            + "; ".join(problems)
            + ". Restore a backup made by the release before migrations, or fix these by hand"
        )


# --- applying ------------------------------------------------------------------------------
def migrate(
    db: peewee.Database,
    *,
    to: int | None = None,
    only: int | None = None,
    known: Sequence[Migration] | None = None,
    report: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Apply the pending migrations up to ``to`` (default: all), each under the lock.

    ``only`` applies that one migration unless it is applied already, whatever else another
    process applied meanwhile (a command that reports each step as it goes)."""
    migrations = tuple(known) if known is not None else load_migrations()
    if only is not None:
        todo = tuple(m for m in migrations if m.number == only)
    else:
        todo = _todo(read_state(db, migrations), to)
    dialect = dialect_of(db)
    outcomes: list[Outcome] = []
    for migration in todo:
        started = time.monotonic()
        with _foreign_keys_off(db), schema_lock(db):
            action = _apply_locked(db, dialect, migration)
        outcome = Outcome(migration, action, time.monotonic() - started)
        log.info("schema migration %s: %s in %.2f s", migration.label, action, outcome.seconds)
        outcomes.append(outcome)
        if report is not None:
            report(outcome)
    return outcomes


def _apply_locked(db: peewee.Database, dialect: str, migration: Migration) -> str:
    """Apply ``migration`` unless another process did; we hold the lock, in a transaction."""
    stamped = False
    if not db.table_exists(TABLE):
        unstamped = bool(set(db.get_tables()) & _baseline_tables())
        peewee.SchemaManager(_Record, db).create_table(safe=False)
        if unstamped:
            _check_baseline(db)
            _record(db, 1, BASELINE_NAME, "stamped")
            stamped = True
    if migration.number in {a.number for a in _applied(db)}:
        return "stamped" if stamped and migration.number == 1 else "skipped"
    step = Step(db, dialect, playhouse_migrate.SchemaMigrator.from_database(db))
    try:
        migration.up(step)
        if dialect == "sqlite":
            broken = execute_sql(db, "PRAGMA foreign_key_check").fetchall()
            if broken:
                raise KuwaError(
                    f"it leaves rows whose foreign keys point nowhere: {broken[:5]}",
                    code="migration_failed",
                )
    except (peewee.PeeweeException, KuwaError, ValueError) as exc:
        raise KuwaError(
            f"schema migration {migration.label} failed and was rolled back: {exc}",
            code="migration_failed",
        ) from exc
    _record(db, migration.number, migration.name, "applied")
    return "applied"


def _record(db: peewee.Database, number: int, name: str, how: str) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    _Record.insert(number=number, name=name, applied_at=now, how=how).bind(db).execute()


@contextmanager
def schema_lock(db: peewee.Database) -> Iterator[None]:
    """A transaction holding the schema lock: only one process at a time is inside one.

    SQLite: ``BEGIN IMMEDIATE`` (waiting up to LOCK_WAIT_MS for the write lock);
    PostgreSQL: ``pg_advisory_xact_lock``, released at commit or rollback."""
    if isinstance(db, peewee.SqliteDatabase):
        (before,) = execute_sql(db, "PRAGMA busy_timeout").fetchone()
        execute_sql(db, f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
        try:
            with db.atomic(lock_type="IMMEDIATE"):
                yield
        finally:
            execute_sql(db, f"PRAGMA busy_timeout = {int(before)}")
        return
    with db.atomic():
        (got,) = execute_sql(db, "SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()
        if not got:
            log.info("waiting for another process to finish changing the schema")
            execute_sql(db, "SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        yield


@contextmanager
def _foreign_keys_off(db: peewee.Database) -> Iterator[None]:
    """SQLite: no foreign key actions while a migration rebuilds tables (set outside the
    transaction, as SQLite requires); the migration checks them before it commits."""
    if not isinstance(db, peewee.SqliteDatabase) or db.in_transaction():
        yield
        return
    (was_on,) = execute_sql(db, "PRAGMA foreign_keys").fetchone()
    execute_sql(db, "PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        if was_on:
            execute_sql(db, "PRAGMA foreign_keys = ON")


# --- what a process does when it opens the database ------------------------------------------
def ensure_schema(db: peewee.Database, *, auto_migrate: bool) -> list[Outcome]:
    """Bring the schema to the newest migration, or refuse when ``auto_migrate`` is off."""
    state = read_state(db)
    if state.newer:
        log.warning(
            "the database schema is at %04d, newer than this Kuwa (%04d): a newer release "
            "migrated it; this one carries on, which works while migrations only add",
            state.current,
            state.head,
        )
    if not state.pending:
        return []
    if not auto_migrate:
        pending = ", ".join(m.label for m in state.pending)
        raise ConfigError(
            f"the database schema is {state.describe()}; this Kuwa needs {state.head:04d} "
            f"(pending: {pending}). Run `kuwa-cli db migrate` with the same database, or set "
            "KUWA_DB_AUTO_MIGRATE=true to migrate when a process starts"
        )
    return migrate(db, known=state.known)
