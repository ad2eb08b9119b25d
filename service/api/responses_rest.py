"""REST routes of the Responses API: ``POST /v1/responses``, ``GET /v1/responses/{id}``.

Guarded as ``/v1/chat/completions`` is (draining, API key, request metrics); errors are raised as
``ServiceError`` and rendered by the app's handlers, so the envelope is the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service import metrics
from service.auth import ApiKeys
from service.errors import ServiceError, Unavailable
from service.lifecycle import Draining
from service.responses.service import ChatCompletions, ResponsesService
from service.responses.store import ResponseStore

ReadBody = Callable[[Request], Awaitable[Any]]


def responses_router(
    chat: ChatCompletions,
    api_keys: ApiKeys,
    draining: Draining,
    *,
    store: ResponseStore | None,
    read_body: ReadBody,
) -> APIRouter:
    """The routes over ``chat``; ``store`` keeps responses for ``previous_response_id``
    (a default-sized one when ``None``); ``read_body`` decodes a bounded JSON body."""
    service = ResponsesService(chat, store if store is not None else ResponseStore())
    router = APIRouter()

    @router.post("/v1/responses")
    async def create_response(request: Request) -> JSONResponse:
        with metrics.track_request("rest", unresolved="500") as outcome:
            try:
                if draining.active:
                    raise Unavailable("The server is shutting down.", code="shutting_down")
                api_keys.check(request.headers.get("authorization"))
                result = await service.create(await read_body(request))
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
