"""Documents in the OpenAPI document (see :mod:`.openapi`): ``/v1/files`` (OpenAI's Files
API) and the web app's upload, list and delete of a room's files."""

from __future__ import annotations

from typing import Any

from kuwa.gateway.files_api import OPENAI_STATUS, PURPOSES
from kuwa.gateway.openapi_schemas import JSON, errors, nullable, obj, ref

Schema = dict[str, Any]
Security = list[dict[str, list[str]]]
BEARER: Security = [{"bearerAuth": []}]
SESSION: Security = [{"session": []}]
SESSION_CSRF: Security = [{"session": [], "csrf": []}]
STATUSES = ("queued", "indexing", "ready", "failed")
FILE_ID: Schema = {"type": "string", "pattern": "^file-[0-9a-f]+$", "example": "file-0d1e2f"}
PATH_ID = {"name": "file_id", "in": "path", "required": True, "schema": FILE_ID}
UPLOAD_TYPES = "PDF, DOCX, PPTX, XLSX, CSV, TXT, Markdown or HTML"
FILE_EXAMPLE = {
    "id": "file-5b0c0a8f3d1e4c2b9a7f6e5d",
    "object": "file",
    "bytes": 48213,
    "created_at": 1795671826,
    "expires_at": None,
    "filename": "report.pdf",
    "purpose": "assistants",
    "status": "uploaded",
    "status_details": None,
    "kuwa_status": "queued",
    "pages": 12,
    "passages": 0,
}


def file_schemas() -> dict[str, Schema]:
    int0: Schema = {"type": "integer", "minimum": 0}
    return {
        "Citation": obj(
            {
                "n": {"type": "integer", "minimum": 1, "description": "Cited as `[n]`."},
                "file": FILE_ID,
                "name": {"type": "string", "description": "The file's name."},
                "page": {
                    "type": ["integer", "null"],
                    "description": "1-based page, slide or sheet; null for formats without.",
                },
                "text": {"type": "string", "description": "The passage."},
            }
        ),
        "FileObject": obj(
            {
                "id": FILE_ID,
                "object": {"const": "file"},
                "bytes": int0,
                "created_at": {"type": "integer"},
                "expires_at": {"type": "null"},
                "filename": {"type": "string"},
                "purpose": {"enum": list(PURPOSES)},
                "status": {
                    "enum": sorted({*OPENAI_STATUS.values(), "error"}),
                    "description": "OpenAI's: `uploaded` while Kuwa indexes it, then "
                    "`processed` (usable in a chat) or `error`.",
                },
                "status_details": {"type": ["string", "null"], "description": "Why: error."},
                "kuwa_status": {"enum": list(STATUSES)},
                "pages": {**int0, "description": "Pages, slides or sheets."},
                "passages": {**int0, "description": "Passages indexed."},
            }
        ),
        "FileList": obj(
            {
                "object": {"const": "list"},
                "data": {"type": "array", "items": ref("FileObject")},
                "has_more": {"const": False},
            }
        ),
        "FileDeleted": obj(
            {"id": FILE_ID, "object": {"const": "file"}, "deleted": {"const": True}}
        ),
        "AppFile": obj(
            {
                "id": FILE_ID,
                "name": {"type": "string"},
                "kind": {"enum": ["pdf", "docx", "pptx", "xlsx", "csv", "txt", "md", "html"]},
                "bytes": int0,
                "room": {"type": ["integer", "null"]},
                "bot": {"type": ["integer", "null"]},
                "owner": {"type": "integer", "description": "Who uploaded it."},
                "status": {"enum": list(STATUSES)},
                "pages": int0,
                "done": {**int0, "description": "Pages read so far (progress)."},
                "passages": int0,
                "error": nullable({"type": "string"}),
                "created": {"type": "number"},
            },
            extra=True,
        ),
    }


def _upload_body(form: bool) -> Schema:
    multipart: Schema = {
        "schema": obj(
            {
                "file": {"type": "string", "contentMediaType": "application/octet-stream"},
                "purpose": {"enum": list(PURPOSES), "default": "assistants"},
            },
            ["file"],
            extra=True,
        )
    }
    content: Schema = {"multipart/form-data": multipart}
    if not form:
        content["application/octet-stream"] = {
            "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
        }
    return {"required": True, "content": content}


def _json(schema: str, example: Any = None) -> Schema:
    media: Schema = {"schema": ref(schema)}
    if example is not None:
        media["example"] = example
    return {JSON: media}


def file_paths() -> dict[str, Schema]:
    upload_errors = errors(400, 401, 403, 413, 500)
    return {
        "/v1/files": {
            "post": {
                "tags": ["openai"],
                "operationId": "createFile",
                "summary": "Upload a document to chat with",
                "description": f"{UPLOAD_TYPES}, as `multipart/form-data` with `file` and "
                "`purpose`. The pages are counted and the file checked at once (413 beyond "
                "`KUWA_FILES_MAX_BYTES`, `KUWA_FILES_MAX_PAGES` or your quota; 400 for a "
                "damaged, locked or unknown file); a background worker then indexes it "
                "(`status` `uploaded` until it is `processed`).",
                "security": BEARER,
                "requestBody": _upload_body(True),
                "responses": {
                    "200": {
                        "description": "The file, queued for indexing.",
                        "content": _json("FileObject", FILE_EXAMPLE),
                    },
                    **upload_errors,
                },
            },
            "get": {
                "tags": ["openai"],
                "operationId": "listFiles",
                "summary": "Your files",
                "parameters": [
                    {"name": "purpose", "in": "query", "schema": {"enum": list(PURPOSES)}}
                ],
                "security": BEARER,
                "responses": {
                    "200": {"description": "Your files.", "content": _json("FileList")},
                    **errors(401, 403, 500),
                },
            },
        },
        "/v1/files/{file_id}": {
            "get": {
                "tags": ["openai"],
                "operationId": "retrieveFile",
                "summary": "One file and how far its indexing is",
                "parameters": [PATH_ID],
                "security": BEARER,
                "responses": {
                    "200": {"description": "The file.", "content": _json("FileObject")},
                    **errors(401, 403, 404, 500),
                },
            },
            "delete": {
                "tags": ["openai"],
                "operationId": "deleteFile",
                "summary": "Delete a file, its passages and its index",
                "parameters": [PATH_ID],
                "security": BEARER,
                "responses": {
                    "200": {"description": "Deleted.", "content": _json("FileDeleted")},
                    **errors(401, 403, 404, 500),
                },
            },
        },
        "/v1/files/{file_id}/content": {
            "get": {
                "tags": ["openai"],
                "operationId": "downloadFile",
                "summary": "The file as it was uploaded (always an attachment)",
                "parameters": [PATH_ID],
                "security": BEARER,
                "responses": {
                    "200": {
                        "description": "The bytes.",
                        "content": {
                            "application/octet-stream": {
                                "schema": {
                                    "type": "string",
                                    "contentMediaType": "application/octet-stream",
                                }
                            }
                        },
                    },
                    **errors(401, 403, 404, 500),
                },
            }
        },
        "/app/rooms/{room_id}/files": {
            "post": {
                "tags": ["app"],
                "operationId": "appUploadRoomFile",
                "summary": "Add a document to a room (participants)",
                "description": f"{UPLOAD_TYPES}: the raw body with `?name=`, or a form with a "
                "`file` part. Every model of the room answers from the room's documents.",
                "parameters": [
                    {
                        "name": "room_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                    {"name": "name", "in": "query", "schema": {"type": "string"}},
                ],
                "security": SESSION_CSRF,
                "requestBody": _upload_body(False),
                "responses": {
                    "201": {
                        "description": "Stored, queued for indexing.",
                        "content": _json("AppFile"),
                    },
                    **errors(400, 401, 403, 404, 413, 500),
                },
            },
            "get": {
                "tags": ["app"],
                "operationId": "appRoomFiles",
                "summary": "A room's documents (viewers)",
                "parameters": [
                    {
                        "name": "room_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "security": SESSION,
                "responses": {
                    "200": {
                        "description": "The files, oldest first.",
                        "content": {
                            JSON: {
                                "schema": obj({"files": {"type": "array", "items": ref("AppFile")}})
                            }
                        },
                    },
                    **errors(401, 404, 500),
                },
            },
        },
        "/app/files/{file_id}/delete": {
            "post": {
                "tags": ["app"],
                "operationId": "appDeleteFile",
                "summary": "Delete a document (its uploader or the room's owner)",
                "parameters": [PATH_ID],
                "security": SESSION_CSRF,
                "responses": {
                    "200": {
                        "description": "Deleted.",
                        "content": {JSON: {"schema": obj({})}},
                    },
                    **errors(401, 404, 500),
                },
            }
        },
    }
