"""One error taxonomy for the whole service, and one table mapping it to HTTP and gRPC.

Errors that are the client's are raised as such, deliberately (``InvalidRequest``);
anything else that escapes is a server bug and becomes ``Internal`` at the faces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc


@dataclass(frozen=True)
class ErrorKind:
    """How one error class is presented on each face."""

    http_status: int
    grpc_code: grpc.StatusCode
    openai_type: str


class ServiceError(Exception):
    """Base of every error the faces know how to present."""

    kind = ErrorKind(500, grpc.StatusCode.INTERNAL, "server_error")
    default_code: str | None = None
    retry_after_s: int | None = None  # REST ``Retry-After`` / gRPC ``retry-after`` trailer

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code

    def headers(self) -> dict[str, str]:
        """HTTP headers of the error response."""
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}

    def trailers(self) -> tuple[tuple[str, str], ...]:
        """gRPC trailing metadata of the error status."""
        return () if self.retry_after_s is None else (("retry-after", str(self.retry_after_s)),)

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI error envelope: ``{"error": {message, type, param, code}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.kind.openai_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(ServiceError):
    """The client sent something we cannot serve (HTTP 400 / INVALID_ARGUMENT)."""

    kind = ErrorKind(400, grpc.StatusCode.INVALID_ARGUMENT, "invalid_request_error")


class Unauthenticated(ServiceError):
    """Missing or wrong API key (HTTP 401 / UNAUTHENTICATED)."""

    kind = ErrorKind(401, grpc.StatusCode.UNAUTHENTICATED, "authentication_error")
    default_code = "invalid_api_key"


class NotFound(ServiceError):
    """No such route or resource (HTTP 404 / NOT_FOUND)."""

    kind = ErrorKind(404, grpc.StatusCode.NOT_FOUND, "not_found_error")


class ModelNotFound(NotFound):
    """The request names a model that is not served: 404 with OpenAI's ``invalid_request_error``
    and ``model_not_found``, as OpenAI answers it (gRPC NOT_FOUND)."""

    kind = ErrorKind(404, grpc.StatusCode.NOT_FOUND, "invalid_request_error")
    default_code = "model_not_found"


class Overloaded(ServiceError):
    """Queues are full; retry later (HTTP 429 / RESOURCE_EXHAUSTED)."""

    kind = ErrorKind(429, grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limit_error")
    default_code = "overloaded"
    retry_after_s = 1


class Unavailable(ServiceError):
    """Triton or the model is not reachable or not ready (HTTP 503 / UNAVAILABLE)."""

    kind = ErrorKind(503, grpc.StatusCode.UNAVAILABLE, "service_unavailable_error")
    default_code = "unavailable"


class DeadlineExceeded(ServiceError):
    """The request's deadline passed before generation finished (HTTP 504 / DEADLINE_EXCEEDED)."""

    kind = ErrorKind(504, grpc.StatusCode.DEADLINE_EXCEEDED, "timeout_error")
    default_code = "deadline_exceeded"


class Cancelled(ServiceError):
    """The client went away (HTTP 499 / CANCELLED)."""

    kind = ErrorKind(499, grpc.StatusCode.CANCELLED, "cancelled_error")
    default_code = "cancelled"


class Internal(ServiceError):
    """A server bug; the message never carries a traceback (HTTP 500 / INTERNAL)."""

    kind = ErrorKind(500, grpc.StatusCode.INTERNAL, "server_error")
    default_code = "internal_error"
