"""The chat web app's JSON API (``/app/…``, docs/web-app-api.md) as typed structs.

Request bodies are decoded into their struct by the route's declaration
(:func:`kuwa.gateway.endpoint.endpoint`), which checks types, bounds and required fields;
the handler adds the rules that need the database (may this user use that model?). Response
structs list the fields a client may rely on; the objects may carry more (``Open``).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from kuwa.schemas.api import FileId

RoomRole = Literal["owner", "participant", "viewer"]
Time = Annotated[float, Meta(description="Unix time (seconds).")]
AccessCodes = Annotated[
    list[str], Meta(description="Access codes of models, or `bot:ID` for bots.")
]
BOT_VISIBILITIES = ("system", "community", "group", "private")


class Open(msgspec.Struct):
    """A response object: the fields listed, and maybe more."""


class Body(msgspec.Struct, forbid_unknown_fields=False):
    """A request body: the fields listed; others are ignored. ``MESSAGES`` (a class
    variable) may give a field's error its own sentence (the UI's catalog translates it)."""


# --- request bodies ---------------------------------------------------------------------------
class NewRoom(Body, kw_only=True):
    MESSAGES: ClassVar[dict[str, str]] = {"models": "Choose at least one model."}

    models: Annotated[list[str], Meta(min_length=1, description="The room's models (or bots).")]
    chained: Annotated[bool, Meta(description="Each model sees the others' earlier answers.")] = (
        True
    )


class RoomChange(Body, kw_only=True):
    """Only the fields sent change."""

    title: str | None = None
    chained: bool | None = None
    models: AccessCodes | None = None
    model_settings: Annotated[
        dict[str, Any] | None,
        Meta(description="Per model: a system prompt and generation parameters (bounded)."),
    ] = None


class Prompt(Body, kw_only=True):
    content: str
    models: Annotated[
        list[str] | None, Meta(description="Send to these models of the room only.")
    ] = None
    parent: Annotated[
        int | UnsetType | None,
        Meta(
            description="Branch after this prompt (an edit sends the edited prompt's parent; "
            "null: a new first prompt)."
        ),
    ] = UNSET


class Share(Body, kw_only=True):
    """Share with a user (``email``) or a group, in a role."""

    email: str | None = None
    group: str | None = None
    role: Annotated[
        Literal["viewer", "participant", "none"],
        Meta(description="none takes the share back."),
    ] = "viewer"


class LinkSwitch(Body, kw_only=True):
    enabled: Annotated[bool, Meta(description="The read-only link on or off.")]


class Feedback(Body, kw_only=True):
    rating: Annotated[int, Meta(ge=-1, le=1, description="1 good, -1 bad, 0 none.")] = 0
    flags: list[str] | None = None
    comment: str | None = None


class Translate(Body, kw_only=True):
    lang: Annotated[str | None, Meta(description="en or zh-TW (default: the page's).")] = None
    model: Annotated[
        str | None, Meta(description="The model that translates (default: the answer's).")
    ] = None


class Vote(Body, kw_only=True):
    outcome: Literal["a", "b", "tie", "bad"]


class BotFields(Body, kw_only=True):
    """A bot's fields; on a change only those sent."""

    MESSAGES: ClassVar[dict[str, str]] = {"name": "A bot needs a name of 1 to 200 characters."}

    name: Annotated[str, Meta(min_length=1, max_length=200)] | UnsetType = UNSET
    description: str | UnsetType = UNSET
    base: Annotated[str, Meta(description="The model it is built on.")] | UnsetType = UNSET
    modelfile: str | UnsetType | None = UNSET
    avatar: Annotated[str | None, Meta(description="A small image as a data: URL.")] | UnsetType = (
        UNSET
    )
    react_buttons: list[str] | UnsetType = UNSET
    visibility: Literal["system", "community", "group", "private"] | UnsetType = UNSET

    def sent(self) -> dict[str, Any]:
        """The fields sent."""
        return {
            f: getattr(self, f) for f in self.__struct_fields__ if getattr(self, f) is not UNSET
        }


class NewBot(BotFields, kw_only=True):
    """A new bot: its name, and the fields to set."""

    name: Annotated[str, Meta(min_length=1, max_length=200)]


class RoomsQuery(msgspec.Struct):
    q: Annotated[str, Meta(description="Search in titles.")] = ""


class BotsQuery(msgspec.Struct):
    q: Annotated[str, Meta(description="Search in names and descriptions.")] = ""


class ExportQuery(msgspec.Struct):
    format: Literal["json", "tsv", "docx"] = "json"


Day = Annotated[str, Meta(description="A date like 2026-11-26 (or empty).")]


class FeedbackQuery(msgspec.Struct):
    """Feedback as training data (soft-deleted answers included, as Kuwa did)."""

    format: Literal["preference", "openai", "dpo", "csv"] = "preference"
    model: Annotated[str, Meta(description="Only this model's (may repeat).")] = ""
    since: Day = ""
    until: Day = ""
    rating: Literal["1", "-1", "0", ""] = ""


class LeaderboardQuery(msgspec.Struct):
    since: Day = ""
    until: Day = ""
    language: Annotated[str, Meta(max_length=16, description="Prompts in this language.")] = ""


# --- answers ----------------------------------------------------------------------------------
class Empty(msgspec.Struct, forbid_unknown_fields=True):
    """Done; nothing to say."""


class Person(Open):
    id: int
    name: str


class AppModel(Open):
    code: Annotated[str, Meta(description="The access code.")]
    name: str
    description: str
    image: str
    order: int
    react_buttons: list[str]
    live: Annotated[bool, Meta(description="An executor serves it now.")]


class AppBot(Open):
    id: int
    code: Annotated[str, Meta(description="`bot:ID`: use it as a room's model.")]
    name: str
    base: Annotated[str, Meta(description="The model it is built on.")]
    live: bool


class Catalog(msgspec.Struct, forbid_unknown_fields=True):
    models: list[AppModel]
    bots: list[AppBot]


class RoomSummary(Open):
    id: int
    title: str
    models: list[str]
    updated: Time
    owner: Annotated[bool, Meta(description="You own the room.")]
    role: RoomRole


class RoomList(msgspec.Struct, forbid_unknown_fields=True):
    rooms: list[RoomSummary]


class AppMessage(Open):
    """A prompt (``role: user``, with ``author``) or an answer (with ``model``, ``status``,
    ``error``, ``feedback``, ``translation``)."""

    id: int
    room: int
    role: Literal["user", "assistant"]
    parent: int | None
    content: str
    created: Time
    selected: bool
    author: Person | UnsetType = UNSET
    model: str | UnsetType = UNSET
    status: Literal["running", "done", "failed", "cancelled"] | UnsetType = UNSET
    error: str | UnsetType | None = UNSET
    feedback: dict[str, Any] | UnsetType | None = UNSET
    translation: dict[str, Any] | UnsetType | None = UNSET
    citations: list[Any] | UnsetType = UNSET


class Room(Open):
    id: int
    title: str
    models: list[str]
    chained: bool
    role: RoomRole
    owner: Person
    members: list[dict[str, Any]]
    me: Person
    link: str | UnsetType | None = UNSET
    messages: (
        Annotated[list[AppMessage], Meta(description="Every live message, oldest first.")]
        | UnsetType
    ) = UNSET


class Sent(msgspec.Struct, forbid_unknown_fields=True):
    """The prompt and one running answer per model."""

    prompt: AppMessage
    answers: list[AppMessage]


class Stopped(msgspec.Struct, forbid_unknown_fields=True):
    stopped: Annotated[int, Meta(ge=0)]


class Restored(msgspec.Struct, forbid_unknown_fields=True):
    room: Annotated[int, Meta(description="The room the message is back in.")]


class Imported(msgspec.Struct, forbid_unknown_fields=True):
    pending: Annotated[int, Meta(ge=0, description="Answers the worker will generate.")]
    files: Annotated[int, Meta(ge=0, description="Documents imported.")] | UnsetType = UNSET


class Trash(Open):
    rooms: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    days: Annotated[int, Meta(description="Days a deleted item is kept.")]


class Rating(Open):
    model: str
    score: float
    low: float
    high: float
    battles: int
    win_rate: float


class Leaderboard(Open):
    battles: Annotated[int, Meta(ge=0, description="Battles counted.")]
    filters: dict[str, str | None]
    languages: Annotated[dict[str, int], Meta(description="Battles per prompt language.")]
    leaderboard: list[Rating]
    elo: dict[str, float]
    win_matrix: Annotated[
        dict[str, dict[str, float | None]],
        Meta(description="m[row][col]: the row model's win rate against col."),
    ]


class Bot(Open):
    id: int
    code: str
    name: str
    description: str
    base: str
    avatar: str | None
    react_buttons: list[str]
    visibility: Literal["system", "community", "group", "private"]
    mine: bool
    modelfile: Annotated[
        str | None, Meta(description="null unless yours or you may read any Modelfile.")
    ]
    can_edit: bool
    can_delete: bool


class BotList(msgspec.Struct, forbid_unknown_fields=True):
    bots: list[Bot]


class AppFile(Open):
    id: FileId
    name: str
    kind: Literal["pdf", "docx", "pptx", "xlsx", "csv", "txt", "md", "html"]
    bytes: Annotated[int, Meta(ge=0)]
    room: int | None
    bot: int | None
    owner: Annotated[int, Meta(description="Who uploaded it.")]
    status: Literal["queued", "indexing", "ready", "failed"]
    pages: Annotated[int, Meta(ge=0)]
    done: Annotated[int, Meta(ge=0, description="Pages read so far (progress).")]
    passages: Annotated[int, Meta(ge=0)]
    error: str | None
    created: float


class FileListing(msgspec.Struct, forbid_unknown_fields=True):
    files: list[AppFile]


class RoomUpload(msgspec.Struct):
    """A document as a form's ``file`` part (or the raw body with ``?name=``)."""

    file: bytes


class UploadQuery(msgspec.Struct):
    name: Annotated[str, Meta(description="The file's name, for a raw body.")] = ""


# --- the room's live events (GET /app/rooms/{id}/events) -----------------------------------
class Hello(Open):
    room: Room


class Text(msgspec.Struct, forbid_unknown_fields=True):
    id: int
    text: str
    seq: int


class Presence(msgspec.Struct, forbid_unknown_fields=True):
    users: list[Person]


class Gone(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


ROOM_EVENTS: dict[str, Any] = {
    "hello": Hello,
    "message": AppMessage,
    "delta": Text,
    "translation": Text,
    "presence": Presence,
    "room": Room,
    "gone": Gone,
}
