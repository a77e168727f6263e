"""What a migration's ``up(step)`` works with (:class:`Step`), apart from the runner
(:mod:`kuwa.accounts.migrate`) so that the migrations import it without importing the runner
that imports them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import peewee
from playhouse import migrate as playhouse_migrate


@dataclass(frozen=True, slots=True)
class Step:
    """What a migration's ``up(step)`` works with: the database and peewee's migrator."""

    db: peewee.Database
    dialect: str  # "sqlite" or "postgresql"
    migrator: Any  # playhouse.migrate.SqliteMigrator or PostgresqlMigrator

    def run(self, *operations: Any) -> None:
        """Apply ``step.migrator`` operations (add_column, add_index, …) in order."""
        playhouse_migrate.migrate(*operations)

    def sql(
        self,
        *,
        sqlite: str | None = None,
        postgresql: str | None = None,
        params: Sequence[Any] = (),
    ) -> None:
        """Run the statement written for this database's dialect."""
        statement = sqlite if self.dialect == "sqlite" else postgresql
        if statement is None:
            raise ValueError(f"this migration gives no SQL for {self.dialect}")
        execute_sql(self.db, statement, params)

    def create_tables(self, models: Sequence[type[peewee.Model]]) -> None:
        """Create the tables (and their indexes) of frozen model classes, in dependency order.

        The models belong to no database; they are not bound, so nothing global changes."""
        for model in peewee.sort_models(models):  # type: ignore[attr-defined]
            peewee.SchemaManager(model, self.db).create_all(safe=False)


def execute_sql(db: peewee.Database, statement: str, params: Sequence[Any] = ()) -> Any:
    """``db.execute_sql`` (untyped in peewee's stubs): the cursor."""
    return db.execute_sql(statement, params)  # type: ignore[no-untyped-call]
