"""REST routes of the Responses API: ``POST /v1/responses``, ``GET /v1/responses/{id}``.

The app's admission middleware checks the API key, refuses work while draining and counts the
request, as for ``/v1/chat/completions``; errors are raised as ``ServiceError`` and rendered by
the app's handlers, so the envelope is the same. ``stream: true`` answers Server-Sent Events as
OpenAI sends them (``event: <type>`` and ``data: <event JSON>``; no ``[DONE]``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from service.api.admission import until_disconnect
from service.chat_types import ChatBackend
from service.responses.events import Event
from service.responses.service import ResponsesService
from service.responses.store import ResponseStore

ReadBody = Callable[[Request], Awaitable[Any]]
EventStream = Callable[[AsyncIterator[bytes]], Response]


def responses_router(
    chat: ChatBackend,
    store: ResponseStore | None,
    read_body: ReadBody,
    event_stream: EventStream,
) -> APIRouter:
    """The routes over ``chat``; ``store`` keeps responses for ``previous_response_id`` (a
    default-sized one when ``None``); ``read_body`` decodes a bounded JSON body;
    ``event_stream`` sends SSE bytes (stopping when the client goes)."""
    service = ResponsesService(chat, store if store is not None else ResponseStore())
    router = APIRouter()

    @router.post("/v1/responses")
    async def create_response(request: Request) -> Response:
        body = await read_body(request)
        if isinstance(body, dict) and body.get("stream") is True:
            events = await until_disconnect(request.receive, service.stream(body))
            return event_stream(_sse(events))
        result = await until_disconnect(request.receive, service.create(body))
        return JSONResponse(result)

    @router.get("/v1/responses/{response_id}")
    async def get_response(response_id: str) -> JSONResponse:
        return JSONResponse(service.get(response_id))

    return router


async def _sse(events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    """Server-Sent Events as OpenAI sends them; closing this closes ``events``."""
    try:
        async for event in events:
            data = json.dumps(event, ensure_ascii=False)
            yield f"event: {event['type']}\ndata: {data}\n\n".encode()
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
