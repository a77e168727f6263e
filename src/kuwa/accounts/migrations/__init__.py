"""Kuwa's schema migrations, numbered, forward-only, one module each.

A migration is a module ``mNNNN_short_name.py`` in this package: ``NNNN`` is its number (the
next free one, four digits), ``short_name`` says what it does. Its docstring's first line is
the title ``kuwa-cli db status`` and ``kuwa-cli db migrate`` print. It defines one function::

    \"\"\"Rooms can be pinned to the top of the list.\"\"\"

    import peewee

    from kuwa.accounts.migration_step import Step


    def up(step: Step) -> None:
        step.run(
            step.migrator.add_column("rooms", "pinned", peewee.BooleanField(default=False)),
            step.migrator.add_index("rooms", ("owner_id", "pinned")),
        )

``step.migrator`` is peewee's ``playhouse.migrate`` ``SchemaMigrator`` for the database's
dialect (add_column, drop_column, rename_column, add_not_null, drop_not_null,
alter_column_type, add_index, drop_index, rename_table, …); ``step.run`` applies its
operations. For what the migrator cannot express, ``step.sql(sqlite=..., postgresql=...)``
runs a statement per dialect (``step.dialect`` is ``"sqlite"`` or ``"postgresql"``).

Adding a migration is a one-file job:

1. change the model in ``kuwa/accounts/models.py``;
2. add ``mNNNN_what.py`` here that brings a database from the previous schema to the new one;
3. run ``pytest tests/test_migrations.py``: it migrates an empty SQLite and PostgreSQL
   database to the newest number and compares the tables, columns (type, NULL), indexes and
   foreign keys with what the models create; a difference names the table and column.

Rules: never edit a migration that has been released (add another); never import
``kuwa.accounts.models`` here (the models change, a migration must not) — use table and
column names, plain peewee fields, or frozen copies of models as ``m0001_initial`` does; a
NOT NULL column needs a default (existing rows get it). Each migration runs in one
transaction (both dialects have transactional DDL) together with the row that records it in
``schema_migrations``, under a lock, so two processes starting at once never both apply it.
Data changes (UPDATE …) belong in the same ``up``.
"""
