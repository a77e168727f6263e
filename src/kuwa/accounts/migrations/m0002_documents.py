"""Chat with documents: uploaded files, their passages and indexes, answers' citations.

The models below are frozen copies of ``kuwa/accounts/models.py`` at this migration; their
foreign keys point at the frozen tables of ``m0001_initial``, which never change either.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import peewee

from kuwa.accounts.migrations.m0001_initial import Bot, Room, User

if TYPE_CHECKING:
    from kuwa.accounts.migration_step import Step


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BaseModel(peewee.Model):
    pass


class Document(BaseModel):
    id = peewee.AutoField()
    uid = peewee.CharField(max_length=40, unique=True)
    owner = peewee.ForeignKeyField(User, backref="documents", on_delete="CASCADE")
    room = peewee.ForeignKeyField(Room, null=True, backref="documents", on_delete="CASCADE")
    bot = peewee.ForeignKeyField(Bot, null=True, backref="documents", on_delete="CASCADE")
    name = peewee.CharField(max_length=255)
    kind = peewee.CharField(max_length=16)
    size = peewee.BigIntegerField(default=0)
    sha256 = peewee.CharField(max_length=64)
    purpose = peewee.CharField(max_length=32, default="assistants")
    status = peewee.CharField(max_length=16, default="queued")
    pages = peewee.IntegerField(default=0)
    done = peewee.IntegerField(default=0)
    passages = peewee.IntegerField(default=0)
    error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "documents"


class DocumentData(BaseModel):
    document = peewee.ForeignKeyField(
        Document, primary_key=True, backref="data", on_delete="CASCADE"
    )
    data = peewee.BlobField()

    class Meta:
        table_name = "document_data"


class Passage(BaseModel):
    id = peewee.AutoField()
    document = peewee.ForeignKeyField(Document, backref="passage_rows", on_delete="CASCADE")
    seq = peewee.IntegerField()
    page = peewee.IntegerField(null=True)
    text = peewee.TextField()

    class Meta:
        table_name = "passages"
        indexes = ((("document", "seq"), True),)


class DocumentIndex(BaseModel):
    document = peewee.ForeignKeyField(
        Document, primary_key=True, backref="index", on_delete="CASCADE"
    )
    data = peewee.BlobField()
    vectors = peewee.BlobField(null=True)

    class Meta:
        table_name = "document_indexes"


def up(step: Step) -> None:
    step.run(step.migrator.add_column("messages", "citations", peewee.TextField(null=True)))
    for model in (Document, DocumentData, Passage, DocumentIndex):  # in dependency order
        peewee.SchemaManager(model, step.db).create_all(safe=False)
