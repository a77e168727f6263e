from __future__ import annotations

import pytest

from kuwa import errors


def test_error_body_shape_is_pinned() -> None:
    assert errors.error_body("Nope.", "invalid_request_error", "model", "x") == {
        "error": {
            "message": "Nope.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "x",
        }
    }


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (errors.InvalidRequestError, 400, "invalid_request"),
        (errors.PayloadTooLargeError, 413, "payload_too_large"),
        (errors.AuthenticationError, 401, "invalid_api_key"),
        (errors.ModelNotFoundError, 404, "model_not_found"),
        (errors.QueueFullError, 429, "queue_full"),
        (errors.ModelUnavailableError, 503, "model_unavailable"),
        (errors.BrokerError, 503, "broker_unavailable"),
    ],
)
def test_each_error_has_its_status_and_code(
    cls: type[errors.KuwaError], status: int, code: str
) -> None:
    exc = cls("Something.", param="p")
    assert exc.status == status
    body = exc.body()["error"]
    assert body == {"message": "Something.", "type": cls.type, "param": "p", "code": code}


def test_code_can_be_overridden_per_instance() -> None:
    exc = errors.JobFailedError("Timed out.", code="timeout")
    assert exc.body()["error"]["code"] == "timeout"
    assert errors.JobFailedError("x").code == "job_failed"
