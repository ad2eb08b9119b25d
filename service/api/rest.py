"""The OpenAI-compatible REST shim: translates HTTP to ``ChatService`` calls and back.

Admission (request id, API key, draining, metrics) is :class:`service.api.admission.RestAdmission`.
``stream: true`` answers Server-Sent Events in OpenAI's format: one ``data: {chunk}`` per
``chat.completion.chunk``, then ``data: [DONE]``. An error before the first byte is the usual
JSON envelope and status; an error after it is an ``event: error`` with the envelope, then the
stream ends. A client that disconnects cancels its generation, streamed or not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from service.api.admission import (
    CLIENT_CLOSED,
    ClientGone,
    RestAdmission,
    error_response,
    until_disconnect,
)
from service.api.faults import ServerFaults
from service.api.responses_rest import responses_router
from service.auth import ApiKeys
from service.chat_types import ChatBackend, ChatCompletionChunk
from service.errors import Internal, InvalidRequest, NotFound, ServiceError, Unavailable
from service.lifecycle import Draining

if TYPE_CHECKING:
    from service.responses.store import ResponseStore

logger = logging.getLogger(__name__)

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def _json_body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length", "")
    too_large = InvalidRequest(
        f"Request body is larger than {limit} bytes.", code="request_too_large"
    )
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    try:
        body = await request.body()
    except ClientDisconnect:
        raise ClientGone from None  # dropped mid-upload: 499, not a server fault
    if len(body) > limit:
        raise too_large
    return parse_json(body)


def parse_json(body: bytes) -> Any:
    """The JSON value of a request body (whatever its Content-Type, see docs/api.md).
    ``ValueError`` covers integer literals over Python's 4,300 digits, ``RecursionError``
    nesting deeper than the parser's stack; both are the client's."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidRequest(
            f"We could not parse the JSON body of your request: {problem}", code="invalid_json"
        ) from None


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"{head}data: {text}\n\n".encode()


async def _events(chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[bytes]:
    """The SSE body: chunks, then ``[DONE]``; a failure becomes an ``error`` event."""
    try:
        async for chunk in chunks:
            yield _sse(chunk.to_openai())
    except ServiceError as err:
        yield _sse(err.to_openai(), "error")
        return
    except Exception:
        logger.exception("unhandled error while streaming")
        error = Internal("The server had an error processing your request.")
        yield _sse(error.to_openai(), "error")
        return
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    yield _sse("[DONE]")


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response that stops (and closes ``events``, which cancels the
    generation) as soon as the client disconnects, even while nothing is being sent."""

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        super().__init__(events, media_type="text/event-stream", headers=_SSE_HEADERS)
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def pump() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for data in self._events:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        try:
            await until_disconnect(receive, pump())
        except ClientGone:
            logger.info("client disconnected: stream cancelled")
        finally:
            close = getattr(self._events, "aclose", None)
            if close is not None:
                await close()


def create_app(
    chat: ChatBackend,
    api_keys: ApiKeys,
    *,
    max_request_bytes: int,
    draining: Draining,
    alive: Callable[[], bool] = lambda: True,
    responses_store: ResponseStore | None = None,
) -> FastAPI:
    """The FastAPI app: /v1/chat/completions, /v1/responses, /v1/models, /health, /ready,
    /metrics. ``alive`` is the liveness verdict (``TritonSupervisor.alive``)."""
    app = FastAPI(title="fncall", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(ServerFaults)  # added first: inside admission, which counts its 500s
    app.add_middleware(RestAdmission, api_keys=api_keys, draining=draining)

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, err: ServiceError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> JSONResponse:
        if err.status_code == 404:
            return error_response(NotFound("Unknown route.", code="not_found"))
        error = InvalidRequest(str(err.detail), code="method_not_allowed")
        return JSONResponse(error.to_openai(), status_code=err.status_code)

    @app.exception_handler(ClientGone)
    async def client_gone(_: Request, __: ClientGone) -> Response:
        logger.info("client disconnected: request cancelled")
        return Response(status_code=CLIENT_CLOSED)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await _json_body(request, max_request_bytes)
        if isinstance(body, dict) and body.get("stream") is True:
            chunks = await until_disconnect(request.receive, chat.stream(body))
            return EventStream(_events(chunks))
        completion = await until_disconnect(request.receive, chat.create(body))
        return JSONResponse(completion.to_openai())

    app.include_router(
        responses_router(
            chat, responses_store, lambda r: _json_body(r, max_request_bytes), EventStream
        )
    )

    @app.get("/v1/models")
    async def list_models() -> JSONResponse:
        return JSONResponse(chat.list_models().to_openai())

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> JSONResponse:
        return JSONResponse(chat.get_model(model_id).to_openai())

    @app.get("/health")
    async def health() -> JSONResponse:
        if not alive():
            return error_response(Unavailable("Triton could not be restarted in time."))
        return JSONResponse({"status": "ok"})

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if draining.active:
            return error_response(Unavailable("The server is shutting down."))
        if not await chat.ready():
            return error_response(Unavailable("Triton or the model is not ready."))
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
