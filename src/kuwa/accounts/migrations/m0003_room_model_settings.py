"""Rooms keep each model's settings; groups bound what their members' requests ask for."""

from __future__ import annotations

from typing import TYPE_CHECKING

import peewee

if TYPE_CHECKING:
    from kuwa.accounts.migration_step import Step


def up(step: Step) -> None:
    step.run(
        step.migrator.add_column("rooms", "model_settings", peewee.TextField(default="{}")),
        step.migrator.add_column("groups", "max_temperature", peewee.FloatField(null=True)),
        step.migrator.add_column("groups", "max_top_p", peewee.FloatField(null=True)),
        step.migrator.add_column("groups", "max_tokens", peewee.IntegerField(null=True)),
    )
