"""REST routes of the Responses API: ``POST /v1/responses``, ``GET /v1/responses/{id}``.

Guarded as ``/v1/chat/completions`` is (draining, API key, request metrics); errors are raised as
``ServiceError`` and rendered by the app's handlers, so the envelope is the same.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from service import metrics
from service.auth import ApiKeys
from service.errors import ServiceError, Unavailable
from service.lifecycle import Draining
from service.responses.events import Event
from service.responses.service import ChatCompletions, ChatStreams, ResponsesService
from service.responses.store import ResponseStore

ReadBody = Callable[[Request], Awaitable[Any]]
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def responses_router(
    chat: ChatCompletions,
    api_keys: ApiKeys,
    draining: Draining,
    *,
    store: ResponseStore | None,
    read_body: ReadBody,
    streams: ChatStreams | None = None,
) -> APIRouter:
    """The routes over ``chat``; ``store`` keeps responses for ``previous_response_id``
    (a default-sized one when ``None``); ``read_body`` decodes a bounded JSON body;
    ``streams`` serves ``stream: true`` (a 400 without it)."""
    store = store if store is not None else ResponseStore()
    service = ResponsesService(chat, store, streams)
    router = APIRouter()

    @router.post("/v1/responses")
    async def create_response(request: Request) -> Response:
        with metrics.track_request("rest", unresolved="500") as outcome:
            try:
                if draining.active:
                    raise Unavailable("The server is shutting down.", code="shutting_down")
                api_keys.check(request.headers.get("authorization"))
                body = await read_body(request)
                if isinstance(body, dict) and body.get("stream") is True:
                    events = await service.stream(body)
                    outcome.status = "200"
                    return StreamingResponse(
                        _sse(events), media_type="text/event-stream", headers=_SSE_HEADERS
                    )
                result = await service.create(body)
            except ServiceError as err:
                outcome.status = str(err.kind.http_status)
                raise
            outcome.status = "200"
            return JSONResponse(result)

    @router.get("/v1/responses/{response_id}")
    async def get_response(response_id: str, request: Request) -> JSONResponse:
        api_keys.check(request.headers.get("authorization"))
        return JSONResponse(service.get(response_id))

    return router


async def _sse(events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    """Server-Sent Events as OpenAI sends them: ``event: <type>`` and ``data: <json>``."""
    async for event in events:
        data = json.dumps(event, ensure_ascii=False)
        yield f"event: {event['type']}\ndata: {data}\n\n".encode()
