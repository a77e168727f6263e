"""The schema a database has, read from its catalog, and the differences between two schemas.

:func:`inspect` reads tables, columns (type, NULL, primary key), indexes and foreign keys
through peewee's introspection, in a form that compares equal between two databases of one
dialect when their DDL does. The migrations test compares a database migrated from empty with
one that ``create_tables`` made from the current models; :mod:`kuwa.accounts.migrate` uses
:func:`column_differences` to check a database from before migrations before stamping it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import peewee

IGNORED_TABLES = frozenset({"schema_migrations"})


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # as the dialect spells it: VARCHAR(100) (SQLite), character varying(100) (PG)
    null: bool
    primary_key: bool

    def describe(self) -> str:
        return f"{self.type}{'' if self.null else ' NOT NULL'}{' PRIMARY KEY' * self.primary_key}"


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool

    def describe(self) -> str:
        return f"{'unique ' * self.unique}index {self.name} ({', '.join(self.columns)})"


@dataclass(frozen=True, slots=True)
class ForeignKey:
    column: str
    dest_table: str
    dest_column: str
    on_delete: str

    def describe(self) -> str:
        return (
            f"foreign key {self.column} -> {self.dest_table}.{self.dest_column} "
            f"ON DELETE {self.on_delete}"
        )


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: Mapping[str, Column]
    indexes: frozenset[Index]
    foreign_keys: frozenset[ForeignKey]


Schema = Mapping[str, Table]


def inspect(db: peewee.Database, ignore: Iterable[str] = IGNORED_TABLES) -> dict[str, Table]:
    """Every table of ``db`` (but ``ignore``), as its catalog describes it."""
    skip = set(ignore)
    return {
        name: _table(db, name)
        for name in db.get_tables()
        if name not in skip and not name.startswith("sqlite_")
    }


def _table(db: peewee.Database, name: str) -> Table:
    sqlite = isinstance(db, peewee.SqliteDatabase)
    columns = {
        c.name: Column(
            name=c.name,
            type=(c.data_type if sqlite else c.full_type or c.data_type).upper(),
            null=bool(c.null),
            primary_key=bool(c.primary_key),
        )
        for c in db.get_columns(name)
    }
    primary = tuple(sorted(c.name for c in columns.values() if c.primary_key))
    indexes = frozenset(
        Index(name=i.name, columns=tuple(i.columns), unique=bool(i.unique))
        for i in db.get_indexes(name)
        # The primary key's own index (tbl_pkey, sqlite_autoindex_…) is the primary key.
        if not (i.unique and tuple(sorted(i.columns)) == primary)
    )
    foreign_keys = frozenset(
        ForeignKey(
            column=f.column,
            dest_table=f.dest_table,
            dest_column=f.dest_column,
            on_delete=(f.on_delete or "NO ACTION").upper(),
        )
        for f in db.get_foreign_keys(name)
    )
    return Table(name, columns, indexes, foreign_keys)


def differences(
    expected: Schema, actual: Schema, *, expected_as: str = "models", actual_as: str = "migrations"
) -> list[str]:
    """What differs between two schemas, one line per difference, naming table and column."""
    out: list[str] = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            out.append(f"table {name} is in the {expected_as} but not in the {actual_as}")
        elif name not in expected:
            out.append(f"table {name} is in the {actual_as} but not in the {expected_as}")
        else:
            out += _table_differences(expected[name], actual[name], expected_as, actual_as)
    return out


def _table_differences(want: Table, got: Table, want_as: str, got_as: str) -> list[str]:
    out: list[str] = []
    t = want.name
    for col in sorted(set(want.columns) | set(got.columns)):
        a, b = want.columns.get(col), got.columns.get(col)
        if b is None and a is not None:
            out.append(f"{t}.{col} ({a.describe()}) is in the {want_as} but not in the {got_as}")
        elif a is None and b is not None:
            out.append(f"{t}.{col} ({b.describe()}) is in the {got_as} but not in the {want_as}")
        elif a != b and a is not None and b is not None:
            out.append(
                f"{t}.{col} is {a.describe()} in the {want_as}, {b.describe()} in the {got_as}"
            )
    out += _extra_items(t, want.indexes, got.indexes, want_as, got_as)
    out += _extra_items(t, got.indexes, want.indexes, got_as, want_as)
    out += _extra_items(t, want.foreign_keys, got.foreign_keys, want_as, got_as)
    out += _extra_items(t, got.foreign_keys, want.foreign_keys, got_as, want_as)
    return out


def _extra_items(
    table: str,
    mine: frozenset[Index] | frozenset[ForeignKey],
    theirs: frozenset[Index] | frozenset[ForeignKey],
    mine_as: str,
    theirs_as: str,
) -> list[str]:
    extra: list[Index | ForeignKey] = [item for item in mine if item not in theirs]
    return [
        f"{table}: {item.describe()} is in the {mine_as} but not in the {theirs_as}"
        for item in sorted(extra, key=repr)
    ]


# --- a lighter check: column names and NULL, against model classes -------------------------
def model_columns(models: Iterable[type[peewee.Model]]) -> dict[str, dict[str, bool]]:
    """``{table: {column: nullable}}`` that ``create_tables(models)`` would make."""
    return {
        m._meta.table_name: {f.column_name: bool(f.null) for f in m._meta.sorted_fields}
        for m in models
    }


def column_differences(db: peewee.Database, models: Iterable[type[peewee.Model]]) -> list[str]:
    """How ``db``'s tables differ from ``models`` in table names, column names and NULL."""
    expected = model_columns(models)
    present = set(db.get_tables())
    out: list[str] = []
    for table, want in sorted(expected.items()):
        if table not in present:
            out.append(f"table {table} is missing")
            continue
        got = {c.name: bool(c.null) for c in db.get_columns(table)}
        for col in sorted(set(want) - set(got)):
            out.append(f"{table}.{col} is missing")
        for col in sorted(set(got) - set(want)):
            out.append(f"{table}.{col} is not part of the expected schema")
        for col in sorted(set(want) & set(got)):
            if want[col] != got[col]:
                null = "NULL" if got[col] else "NOT NULL"
                out.append(f"{table}.{col} is {null}, expected the opposite")
    return out
