"""The errors a client of the public API can get, for the OpenAPI document (see
:mod:`.openapi`): each one's status and type come from its class in :mod:`kuwa.errors`, its
example body from :func:`kuwa.errors.error_body`; one component response per status lists
them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kuwa.errors import (
    AuthenticationError,
    BrokerError,
    ConflictError,
    ContentBlockedError,
    ContextLengthError,
    DocumentError,
    InvalidRequestError,
    JobFailedError,
    KuwaError,
    MethodNotAllowedError,
    ModelNotFoundError,
    ModelUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QueueFullError,
    QuotaExceededError,
    RateLimitError,
    WrongModelTypeError,
    error_body,
)
from kuwa.gateway.openapi_schemas import JSON, ref

Schema = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ErrorCase:
    """One error a client of the API can get: status and type come from the error class."""

    error: type[KuwaError]
    code: str
    when: str
    message: str

    @property
    def status(self) -> int:
        return self.error.status

    @property
    def type(self) -> str:
        return self.error.type


ERRORS: tuple[ErrorCase, ...] = (
    ErrorCase(
        InvalidRequestError,
        "invalid_request",
        "empty body, not JSON, not an object, or a field fails validation (`param` names "
        "it); or the model's chat template refuses the messages (`param`: `messages`)",
        "'temperature' must be between 0 and 2.",
    ),
    ErrorCase(
        WrongModelTypeError,
        "wrong_model_type",
        "a chat sent to an embedding model, or embeddings asked of a chat model (`param`: `model`)",
        "This model makes embeddings (POST /v1/embeddings); it cannot chat.",
    ),
    ErrorCase(
        ContentBlockedError,
        "content_blocked",
        "a rule of the model's operator refused the prompt or stopped the answer",
        "This model does not answer questions about that.",
    ),
    ErrorCase(
        ContextLengthError,
        "context_length_exceeded",
        "the prompt does not fit the model's context even with the oldest turns dropped",
        "The prompt is 4100 tokens long; this model accepts at most 4095. Shorten the message.",
    ),
    ErrorCase(
        AuthenticationError,
        "invalid_api_key",
        "no `Authorization: Bearer`, or an unknown or revoked token",
        "Invalid API token.",
    ),
    ErrorCase(
        PermissionDeniedError,
        "api_not_allowed",
        "the user's group lacks `Room_read_access_to_api`",
        "Your account may not use the API (permission Room_read_access_to_api); "
        "ask an administrator.",
    ),
    ErrorCase(
        PermissionDeniedError,
        "model_not_allowed",
        "the user's group lacks `model:ACCESS_CODE` (`param`: `model`)",
        "You may not use the model 'gpt-4o'; ask an administrator for access.",
    ),
    ErrorCase(
        PermissionDeniedError,
        "ip_not_allowed",
        "the client address is outside `KUWA_IP_ALLOWLIST`",
        "Your address may not use this Kuwa server.",
    ),
    ErrorCase(
        PermissionDeniedError,
        "csrf_failed",
        "a POST of the web app's `/app` API without the `x-csrftoken` header matching the "
        "`kuwa_csrf` cookie",
        "This form has expired or came from another site. Go back, reload the page and try again.",
    ),
    ErrorCase(
        ModelNotFoundError,
        "model_not_found",
        "the access code is not in the catalog, or is disabled or deleted (`param`: `model`)",
        "The model 'nope' does not exist; GET /v1/models lists the models you can use.",
    ),
    ErrorCase(
        NotFoundError,
        "not_found",
        "no such path; or no such job of yours (`param`: `job_id`)",
        "There is no /v2/chat here.",
    ),
    ErrorCase(
        MethodNotAllowedError,
        "method_not_allowed",
        "wrong method for the path",
        "GET is not allowed on /v1/chat/completions.",
    ),
    ErrorCase(
        PayloadTooLargeError,
        "payload_too_large",
        "body over `KUWA_MAX_BODY_BYTES`",
        "The request body is larger than the limit of 2097152 bytes.",
    ),
    ErrorCase(
        DocumentError,
        "unreadable_document",
        "an uploaded or attached file Kuwa cannot read: unknown type, damaged, locked by a "
        "password, no text in it (`param`: `file` or `files`)",
        "The PDF is protected by a password; remove the password and upload it again.",
    ),
    ErrorCase(
        PayloadTooLargeError,
        "payload_too_large",
        "a file over `KUWA_FILES_MAX_BYTES` or `KUWA_FILES_MAX_PAGES`, or a zip bomb",
        "The file has 2500 pages; the limit is 2000.",
    ),
    ErrorCase(
        QuotaExceededError,
        "quota_exceeded",
        "the upload would take the user past `KUWA_FILES_USER_QUOTA_BYTES` or `_FILES`",
        "You keep 500 files, the most allowed; delete some first.",
    ),
    ErrorCase(
        ConflictError,
        "file_not_ready",
        "a file attached to a chat is still being indexed (`Retry-After`)",
        "file-5b0c0a8f3d1e4c2b9a7f6e5d is still being indexed (3 of 12 pages read); try "
        "again in a moment.",
    ),
    ErrorCase(
        RateLimitError,
        "user_job_limit",
        "the user already has their group's (or `KUWA_USER_MAX_JOBS`) answers running",
        "You already have 4 answers running; wait for one to finish.",
    ),
    ErrorCase(
        RateLimitError,
        "user_rate_limit",
        "the user sent `KUWA_USER_REQUESTS_PER_MINUTE` requests this minute",
        "You sent more than 60 requests this minute; wait a little and try again.",
    ),
    ErrorCase(
        QueueFullError,
        "queue_full",
        "`KUWA_MAX_QUEUE` jobs already wait for this access code",
        "Too many requests are waiting for 'echo'; try again shortly.",
    ),
    ErrorCase(
        JobFailedError,
        "model_error",
        "the backend failed (message from the backend)",
        "the debug backend was asked to fail (/debug error)",
    ),
    ErrorCase(
        JobFailedError,
        "executor_shutdown",
        "the executor stopped (SIGTERM) before finishing or starting the job",
        "The executor shut down before the answer was complete.",
    ),
    ErrorCase(
        JobFailedError,
        "executor_lost",
        "the executor died mid-answer, or the job was handed out `KUWA_MAX_DELIVERIES` times",
        "The executor running this request stopped answering.",
    ),
    ErrorCase(
        JobFailedError,
        "queue_timeout",
        "the job waited the model's queue timeout or `KUWA_QUEUE_TIMEOUT` without an executor",
        "'echo' was too busy: the request waited 300 s without starting; try again later.",
    ),
    ErrorCase(
        JobFailedError,
        "timeout",
        "no chunk for the model's idle timeout or `KUWA_STREAM_IDLE_TIMEOUT` seconds",
        "The model sent nothing for a long time; the request was stopped.",
    ),
    ErrorCase(
        JobFailedError,
        "stream_gap",
        "part of the answer was lost and not in the transcript",
        "Part of the answer was lost in transit and could not be recovered.",
    ),
    ErrorCase(
        JobFailedError,
        "publish_failed",
        "Redis failed (a restart, a Sentinel failover) while the answer was being written",
        "Redis failed (a restart or a failover) while this answer was being written; please retry.",
    ),
    ErrorCase(
        JobFailedError,
        "broker_restarted",
        "Redis lost the job (it restarted or was flushed) while it was followed",
        "Redis lost this request (it restarted or was flushed); please retry.",
    ),
    ErrorCase(
        KuwaError,
        "database_error",
        "the accounts database failed while checking the token",
        "database error while reading a token: OperationalError: database is locked",
    ),
    ErrorCase(
        KuwaError,
        "internal_error",
        "an unexpected error (logged by the gateway)",
        "Something went wrong inside Kuwa; it has been logged.",
    ),
    ErrorCase(
        ModelUnavailableError,
        "model_starting",
        "the access code's executor is still loading its model; `Retry-After: 5`",
        "The model 'echo' is starting (loading its weights); try again in a moment.",
    ),
    ErrorCase(
        ModelUnavailableError,
        "model_unavailable",
        "the access code is known but no executor is live",
        "The model 'echo' has no running executor right now; try again later or ask an "
        "administrator to start one.",
    ),
    ErrorCase(
        BrokerError,
        "broker_unavailable",
        "Redis cannot be reached",
        "Redis is unreachable: Connection refused.",
    ),
)

RETRY_AFTER = (409, 429, 503)


def error_response(status: int) -> Schema:
    """The component response for one status: its error codes, one example each."""
    cases = [c for c in ERRORS if c.status == status]
    if status == 409:
        cases.append(ErrorCase(ConflictError, "conflict", "the change clashes with data", ""))
    lines = "\n".join(f"- `{c.code}` ({c.type}): {c.when}" for c in cases)
    examples = {
        c.code: {"value": error_body(c.message or c.when, c.type, _param(c.code), c.code)}
        for c in cases
    }
    out: Schema = {
        "description": f"Error codes:\n\n{lines}",
        "content": {JSON: {"schema": ref("ErrorResponse"), "examples": examples}},
    }
    if status in RETRY_AFTER:
        out["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    return out


def _param(code: str) -> str | None:
    return {
        "invalid_request": "temperature",
        "unreadable_document": "file",
        "quota_exceeded": "file",
        "file_not_ready": "files",
        "model_not_found": "model",
        "model_not_allowed": "model",
        "wrong_model_type": "model",
    }.get(code)


__all__ = ["ERRORS", "RETRY_AFTER", "ErrorCase", "error_response"]
