"""The OpenAI-compatible REST shim: translates HTTP to ``ChatService`` calls and back."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from service import metrics
from service.auth import ApiKeys
from service.errors import (
    Cancelled,
    Internal,
    InvalidRequest,
    NotFound,
    ServiceError,
    Unavailable,
)
from service.lifecycle import Draining
from service.logs import REQUEST_ID, REQUEST_ID_HEADER, new_request_id

if TYPE_CHECKING:
    from service.chat import ChatService

logger = logging.getLogger(__name__)


def _error_response(err: ServiceError) -> JSONResponse:
    return JSONResponse(err.to_openai(), status_code=err.kind.http_status, headers=err.headers())


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
        raise Cancelled("The client disconnected before sending the whole body.") from None
    if len(body) > limit:
        raise too_large
    return parse_json(body)


def parse_json(body: bytes) -> Any:
    """The JSON value of a request body (whatever its Content-Type, as OpenAI reads it).
    ``ValueError`` covers integer literals over Python's 4,300 digits, ``RecursionError``
    nesting deeper than the parser's stack; both are the client's."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidRequest(
            f"We could not parse the JSON body of your request: {problem}", code="invalid_json"
        ) from None


def create_app(
    chat: ChatService,
    api_keys: ApiKeys,
    *,
    max_request_bytes: int,
    draining: Draining,
    alive: Callable[[], bool] = lambda: True,
) -> FastAPI:
    """The FastAPI app: /v1/chat/completions, /v1/models, /health, /ready, /metrics.
    ``alive`` is the liveness verdict (``TritonSupervisor.alive``)."""
    app = FastAPI(title="fncall", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = new_request_id(request.headers.get(REQUEST_ID_HEADER))
        token = REQUEST_ID.set(request_id)
        try:
            response = await call_next(request)
        except Exception:
            # Not an exception handler for Exception: Starlette re-raises after such a
            # handler answers, and uvicorn then closes the keep-alive connection.
            logger.exception("unhandled error")
            response = _error_response(Internal("The server had an error processing your request."))
        finally:
            REQUEST_ID.reset(token)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, err: ServiceError) -> JSONResponse:
        return _error_response(err)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> JSONResponse:
        if err.status_code == 404:
            return _error_response(NotFound("Unknown route.", code="not_found"))
        error = InvalidRequest(str(err.detail), code="method_not_allowed")
        return JSONResponse(error.to_openai(), status_code=err.status_code)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        with metrics.track_request("rest", unresolved="500") as outcome:
            try:
                if draining.active:
                    raise Unavailable("The server is shutting down.", code="shutting_down")
                api_keys.check(request.headers.get("authorization"))
                result = await chat.create(await _json_body(request, max_request_bytes))
            except ServiceError as err:
                outcome.status = str(err.kind.http_status)
                raise
            outcome.status = "200"
            return JSONResponse(result)

    @app.get("/v1/models")
    async def list_models(request: Request) -> JSONResponse:
        api_keys.check(request.headers.get("authorization"))
        return JSONResponse(chat.list_models())

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request) -> JSONResponse:
        api_keys.check(request.headers.get("authorization"))
        return JSONResponse(chat.get_model(model_id))

    @app.get("/health")
    async def health() -> JSONResponse:
        if not alive():
            return _error_response(Unavailable("Triton could not be restarted in time."))
        return JSONResponse({"status": "ok"})

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if draining.active:
            return _error_response(Unavailable("The server is shutting down."))
        if not await chat.ready():
            return _error_response(Unavailable("Triton or the model is not ready."))
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
