"""One flat error hierarchy and the one JSON error shape.

Every error a client sees is ``{"error": {"message", "type", "param", "code"}}``, built by
:func:`error_body`. Library errors (Redis, peewee, HTTP clients) are translated into these at
the boundary where they happen.
"""

from __future__ import annotations

from typing import Any, ClassVar


class KuwaError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


class InvalidRequestError(KuwaError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ContextLengthError(InvalidRequestError):
    """The prompt does not fit the model's context window, even with old turns dropped."""

    code = "context_length_exceeded"


class WrongModelTypeError(InvalidRequestError):
    """A chat sent to an embedding model, or embeddings asked of a chat model."""

    code = "wrong_model_type"


class PayloadTooLargeError(InvalidRequestError):
    status = 413
    code = "payload_too_large"


class QuotaExceededError(PayloadTooLargeError):
    """An upload would take a user past their file quota (settings files_user_quota_*)."""

    code = "quota_exceeded"


class DocumentError(InvalidRequestError):
    """A document Kuwa cannot read: unknown type, corrupt, encrypted, no text, too big."""

    code = "unreadable_document"


class AuthenticationError(KuwaError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(KuwaError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFoundError(KuwaError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class ConflictError(KuwaError):
    """The request clashes with existing data (e.g. an email that is already taken)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class MethodNotAllowedError(KuwaError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class QueueFullError(KuwaError):
    status = 429
    type = "rate_limit_error"
    code = "queue_full"


class RateLimitError(KuwaError):
    """A user is over their limits (requests per minute, running jobs)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limited"


class ModelUnavailableError(KuwaError):
    status = 503
    type = "service_unavailable"
    code = "model_unavailable"


class BrokerError(KuwaError):
    """Redis could not be reached or answered unexpectedly."""

    status = 503
    type = "service_unavailable"
    code = "broker_unavailable"


class JobFailedError(KuwaError):
    """A job failed after it was accepted (executor error, lost executor, timeout)."""

    status = 500
    type = "server_error"
    code = "job_failed"


class ContentBlockedError(KuwaError):
    """A rule of the model's operator refused the request or stopped the answer."""

    status = 400
    type = "invalid_request_error"
    code = "content_blocked"


class MailError(KuwaError):
    """Kuwa could not hand a mail to its SMTP server (or mail is not configured)."""

    status = 502
    type = "server_error"
    code = "mail_failed"


class ConfigError(KuwaError):
    """Bad configuration found at start-up."""

    code = "config_error"


def error_body(
    message: str,
    type: str = "server_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}
