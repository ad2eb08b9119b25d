"""Admission, once per face: request id, API key, draining and request metrics.

REST: :class:`RestAdmission`, an ASGI middleware in front of every route. gRPC:
:class:`GrpcAdmission`, a ``grpc.aio`` server interceptor in front of every method of our
service (``Create``, ``CreateStream``, ``ListModels``; health and reflection pass).

- every request gets a request id (the client's ``x-request-id`` when it sent a usable one),
  set for logging and returned as a header / initial metadata;
- ``/v1/...`` routes and our gRPC methods check the API key;
- generation requests (REST ``POST /v1/...``, gRPC ``Create`` / ``CreateStream``) are refused
  while draining and counted in the request metrics. A REST client that goes away before its
  response completed is counted as ``499``; a cancelled gRPC call as ``CANCELLED``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import metrics
from service.auth import ApiKeys
from service.errors import Internal, ServiceError, Unavailable
from service.lifecycle import Draining
from service.logs import REQUEST_ID, REQUEST_ID_HEADER, new_request_id

logger = logging.getLogger(__name__)

CLIENT_CLOSED = 499  # nginx's status for a client that closed the request
_SHUTTING_DOWN = "The server is shutting down."


def error_response(err: ServiceError) -> JSONResponse:
    """The OpenAI error envelope with the error's HTTP status."""
    return JSONResponse(err.to_openai(), status_code=err.kind.http_status, headers=err.headers())


class RestAdmission:
    """ASGI middleware: request id, API key on ``/v1/``, draining and metrics for generation."""

    def __init__(self, app: ASGIApp, api_keys: ApiKeys, draining: Draining) -> None:
        self._app = app
        self._api_keys = api_keys
        self._draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = new_request_id(headers.get(REQUEST_ID_HEADER))
        token = REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.encode(), request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            path, method = scope["path"], scope["method"]
            if path.startswith("/v1/"):
                try:
                    self._api_keys.check(headers.get("authorization"))
                except ServiceError as err:
                    await error_response(err)(scope, receive, send_with_id)
                    return
            if method == "POST" and path.startswith("/v1/"):
                await self._generation(scope, receive, send_with_id)
            else:
                await self._app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)

    async def _generation(self, scope: Scope, receive: Receive, send: Send) -> None:
        with metrics.track_request("rest", unresolved="500") as outcome:
            if self._draining.active:
                response = error_response(Unavailable(_SHUTTING_DOWN, code="shutting_down"))
                outcome.status = "503"
                await response(scope, receive, send)
                return
            complete = False

            async def watched_receive() -> Message:
                message = await receive()
                if message["type"] == "http.disconnect" and not complete:
                    outcome.status = str(CLIENT_CLOSED)
                return message

            async def tracked_send(message: Message) -> None:
                nonlocal complete
                if message["type"] == "http.response.start":
                    outcome.status = str(message["status"])
                elif message["type"] == "http.response.body" and not message.get("more_body"):
                    complete = True
                await send(message)

            await self._app(scope, watched_receive, tracked_send)


async def until_disconnect(receive: Receive, job: Awaitable[Any]) -> Any:
    """Run ``job`` while watching ``receive`` (the request body already read) for the client's
    disconnect; on disconnect cancel the job and raise :class:`ClientGone`."""
    task = asyncio.ensure_future(job)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
        await asyncio.wait((task, watcher))
    if task.cancelled() and watcher.done() and not watcher.cancelled():
        raise ClientGone
    return task.result()


class ClientGone(Exception):
    """The REST client disconnected before its response completed."""


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


_GENERATION_METHODS = frozenset({"Create", "CreateStream"})


class GrpcAdmission(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Server interceptor over our service: request id, API key, draining, metrics."""

    def __init__(self, service_name: str, api_keys: ApiKeys, draining: Draining) -> None:
        self._prefix = f"/{service_name}/"
        self._api_keys = api_keys
        self._draining = draining

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method or ""
        if handler is None or not method.startswith(self._prefix):
            return handler
        name = method[len(self._prefix) :]
        generation = name in _GENERATION_METHODS
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, generation),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, generation),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    async def _admit(self, context: grpc.aio.ServicerContext, generation: bool) -> None:
        request_id = new_request_id(_metadata(context, REQUEST_ID_HEADER))
        REQUEST_ID.set(request_id)
        await context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
        self._api_keys.check(_metadata(context, "authorization"))
        if generation and self._draining.active:
            raise Unavailable(_SHUTTING_DOWN, code="shutting_down")

    def _unary(self, behavior: Any, generation: bool) -> Any:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with _outcome(generation) as outcome:
                try:
                    await self._admit(context, generation)
                    reply = await behavior(request, context)
                except BaseException as exc:
                    await _fail(context, outcome, exc)
                outcome.status = grpc.StatusCode.OK.name
                return reply

        return handle

    def _streaming(self, behavior: Any, generation: bool) -> Any:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            with _outcome(generation) as outcome:
                try:
                    await self._admit(context, generation)
                    async for reply in behavior(request, context):
                        yield reply
                except BaseException as exc:
                    await _fail(context, outcome, exc)
                outcome.status = grpc.StatusCode.OK.name

        return handle


class _NoOutcome:
    status = ""

    def __enter__(self) -> _NoOutcome:
        return self

    def __exit__(self, *_: object) -> None:
        return None


def _outcome(generation: bool) -> Any:
    """Request metrics for generation methods; nothing for the others."""
    if generation:
        return metrics.track_request("grpc", unresolved=grpc.StatusCode.INTERNAL.name)
    return _NoOutcome()


async def _fail(context: grpc.aio.ServicerContext, outcome: Any, exc: BaseException) -> None:
    """Record the outcome of a failed call and end it with the error's status (re-raises)."""
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        outcome.status = grpc.StatusCode.CANCELLED.name
        raise exc
    if isinstance(exc, ServiceError):
        err: ServiceError = exc
    elif isinstance(exc, Exception) and not isinstance(exc, grpc.aio.AbortError):
        logger.exception("unhandled error", exc_info=exc)
        err = Internal("The server had an error processing your request.")
    else:
        raise exc
    outcome.status = err.kind.grpc_code.name
    await context.abort(err.kind.grpc_code, err.message, trailing_metadata=err.trailers())


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key:
            return str(item.value)
    return None
