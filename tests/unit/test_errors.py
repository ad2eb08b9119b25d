"""The error taxonomy maps to the OpenAI envelope, HTTP status and gRPC code."""

import grpc
import pytest

from service.errors import (
    Cancelled,
    DeadlineExceeded,
    Internal,
    InvalidRequest,
    Overloaded,
    ServiceError,
    Unauthenticated,
    Unavailable,
)


def test_invalid_request_envelope() -> None:
    err = InvalidRequest("bad tools", param="tools", code="invalid_value")
    assert err.kind.http_status == 400
    assert err.kind.grpc_code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.to_openai() == {
        "error": {
            "message": "bad tools",
            "type": "invalid_request_error",
            "param": "tools",
            "code": "invalid_value",
        }
    }


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (Unauthenticated, 401, grpc.StatusCode.UNAUTHENTICATED),
        (Overloaded, 429, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (Unavailable, 503, grpc.StatusCode.UNAVAILABLE),
        (DeadlineExceeded, 504, grpc.StatusCode.DEADLINE_EXCEEDED),
        (Cancelled, 499, grpc.StatusCode.CANCELLED),
        (Internal, 500, grpc.StatusCode.INTERNAL),
    ],
)
def test_kinds(cls: type[ServiceError], status: int, code: grpc.StatusCode) -> None:
    err = cls("x")
    assert err.kind.http_status == status
    assert err.kind.grpc_code == code
    assert err.to_openai()["error"]["code"] == cls.default_code
