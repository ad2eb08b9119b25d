"""ResponsesService: ``POST /v1/responses`` as one Chat Completions call (no second pipeline).

request → (stored conversation of ``previous_response_id``) + items → chat body → ChatService
→ chat completion → output items → Response, kept in the store unless ``store`` is false.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

from service.chat_types import ChatBackend, ChatCompletionChunk
from service.errors import InvalidRequest, NotFound
from service.responses.events import Event, ResponseEvents, response_events
from service.responses.output import (
    assistant_message,
    new_id,
    output_items,
    response_body,
    status_of,
    usage_from_chat,
)
from service.responses.request import ChatTranslation, ResponsesRequest, parse_request, to_chat
from service.responses.store import ResponseStore


class ResponsesService:
    """The OpenAI Responses API over a ``ChatService`` and a response store."""

    def __init__(self, chat: ChatBackend, store: ResponseStore) -> None:
        self._chat = chat
        self._store = store

    async def create(self, body: Any) -> dict[str, Any]:
        """A ``response`` object for an OpenAI request body (``stream`` is the caller's to
        dispatch on); raises ``ServiceError`` types."""
        request = parse_request(body)
        translation = self._translate(request)
        try:
            completion = (await self._chat.create(translation.body)).to_openai()
        except InvalidRequest as err:
            raise translation.params.rename(err) from None
        choice = completion["choices"][0]
        output = output_items(choice["message"], choice["finish_reason"])
        usage = completion["usage"]
        response = response_body(
            request,
            response_id=new_id("resp"),
            created_at=int(time.time()),
            status=status_of(choice["finish_reason"]),
            output=output,
            usage=usage_from_chat(usage),
        )
        self._keep(request, translation, response)
        return response

    async def stream(self, body: Any) -> AsyncIterator[Event]:
        """The events of a streamed response; every validation error raises here, before
        the first event. The response is stored once it completed (or was cut off)."""
        request = parse_request(body)
        translation = self._translate(request)
        chat_body = {**translation.body, "stream": True, "stream_options": {"include_usage": True}}
        try:
            chunks = await self._chat.stream(chat_body)
        except InvalidRequest as err:
            raise translation.params.rename(err) from None
        events = ResponseEvents(request, new_id("resp"), int(time.time()))
        return self._kept_when_done(request, translation, events, chunks)

    async def _kept_when_done(
        self,
        request: ResponsesRequest,
        translation: ChatTranslation,
        events: ResponseEvents,
        chunks: AsyncIterator[ChatCompletionChunk],
    ) -> AsyncIterator[Event]:
        async with aclosing(response_events(events, _openai_chunks(chunks))) as stream:
            async for event in stream:
                if event["type"] in ("response.completed", "response.incomplete"):
                    self._keep(request, translation, events.response)
                yield event

    def get(self, response_id: str) -> dict[str, Any]:
        """A stored response (``GET /v1/responses/{id}``); ``NotFound`` otherwise."""
        stored = self._store.get(response_id)
        if stored is None:
            raise NotFound(
                f"Response with id '{response_id}' not found.", code="response_not_found"
            )
        return dict(stored.response)

    def _translate(self, request: ResponsesRequest) -> ChatTranslation:
        history: tuple[Mapping[str, Any], ...] = ()
        if request.previous_response_id is not None:
            stored = self._store.get(request.previous_response_id)
            if stored is None:
                raise InvalidRequest(
                    f"Previous response with id '{request.previous_response_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            history = stored.conversation
        return to_chat(request, history)

    def _keep(
        self, request: ResponsesRequest, translation: ChatTranslation, response: dict[str, Any]
    ) -> None:
        if request.store:
            conversation = [*translation.conversation, assistant_message(response["output"])]
            self._store.put(response["id"], conversation, response)


async def _openai_chunks(
    chunks: AsyncIterator[ChatCompletionChunk],
) -> AsyncGenerator[Mapping[str, Any], None]:
    """The chunks as OpenAI JSON; closing this closes ``chunks`` (which stops generation)."""
    try:
        async for chunk in chunks:
            yield chunk.to_openai()
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
