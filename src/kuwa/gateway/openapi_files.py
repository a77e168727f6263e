"""``/v1/files`` (OpenAI's Files API) in the OpenAPI document (see :mod:`.openapi`); its
schemas are the structs of :mod:`kuwa.schemas.api`."""

from __future__ import annotations

from typing import Any

from kuwa.gateway.openapi_schemas import JSON, errors, ref
from kuwa.schemas.api import PURPOSES

Schema = dict[str, Any]
Security = list[dict[str, list[str]]]
BEARER: Security = [{"bearerAuth": []}]
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
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": ref("FileUpload")}},
                },
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
                    **errors(400, 401, 403, 500),
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
    }
