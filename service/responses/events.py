"""Chat completion chunks → Responses streaming events (``response.created`` … ``.completed``).

The chunks are OpenAI ``chat.completion.chunk`` dicts of one choice. Text deltas become
``response.output_text.delta`` events of a ``message`` item; each tool call (a new
``tool_calls[].index``) opens a ``function_call`` item whose argument pieces become
``response.function_call_arguments.delta`` events. An item is closed (its ``.done`` events) when
the next one opens or the stream ends. Events are numbered by ``sequence_number`` from 0.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from service.errors import Internal, Overloaded, ServiceError
from service.responses.output import (
    Status,
    function_call_item,
    message_item,
    new_id,
    response_body,
    status_of,
    text_part,
    usage_from_chat,
)
from service.responses.request import ResponsesRequest

logger = logging.getLogger(__name__)

Event = dict[str, Any]


@dataclass
class _OpenItem:
    """The output item being streamed: a message (``call_index`` None) or one tool call."""

    item: dict[str, Any]
    call_index: int | None = None
    text: list[str] = field(default_factory=list)


class ResponseEvents:
    """Builds the event sequence of one streamed response, chunk by chunk."""

    def __init__(self, request: ResponsesRequest, response_id: str, created_at: int) -> None:
        self._request = request
        self.response_id = response_id
        self._created_at = created_at
        self._sequence = 0
        self.output: list[dict[str, Any]] = []
        self._open: _OpenItem | None = None
        self._usage: dict[str, Any] | None = None
        self._finish_reason: str | None = None
        self.response: dict[str, Any] = self._response("in_progress")

    def start(self) -> list[Event]:
        """``response.created`` and ``response.in_progress``."""
        return [
            self._event("response.created", response=self.response),
            self._event("response.in_progress", response=self.response),
        ]

    def feed(self, chunk: Mapping[str, Any]) -> list[Event]:
        """The events of one ``chat.completion.chunk``."""
        events: list[Event] = []
        usage = chunk.get("usage")
        if usage:
            self._usage = usage_from_chat(usage)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self._text(delta["content"])
            for call in delta.get("tool_calls") or []:
                events += self._call(call)
            self._finish_reason = choice.get("finish_reason") or self._finish_reason
        return events

    def finish(self) -> list[Event]:
        """Close the open item; ``response.completed`` (or ``.incomplete`` when cut off)."""
        status = status_of(self._finish_reason)
        events = self._close("incomplete" if status == "incomplete" else "completed")
        self.response = self._response(status)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [*events, self._event(kind, response=self.response)]

    def fail(self, error: ServiceError) -> list[Event]:
        """``response.failed`` carrying the error (after the stream had started)."""
        # OpenAI's response error codes: only overload has its own; the rest are server errors.
        code = "rate_limit_exceeded" if isinstance(error, Overloaded) else "server_error"
        error_body = {"code": code, "message": error.message}
        self.response = self._response("failed", error_body)
        return [self._event("response.failed", response=self.response)]

    def _text(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self._open is None or self._open.call_index is not None:
            events += self._close("completed")
            events += self._add(_OpenItem(message_item(new_id("msg"), None, "in_progress")))
            events.append(self._part_event("response.content_part.added", text_part("")))
        self._open_item().text.append(text)
        events.append(
            self._item_event("response.output_text.delta", content_index=0, delta=text, logprobs=[])
        )
        return events

    def _call(self, call: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        index = call.get("index", 0)
        function = call.get("function") or {}
        if self._open is None or self._open.call_index != index:
            events += self._close("completed")
            call_id = call.get("id") or new_id("call")
            item = function_call_item(
                new_id("fc"), call_id, function.get("name") or "", "", "in_progress"
            )
            events += self._add(_OpenItem(item, call_index=index))
        if function.get("arguments"):
            self._open_item().text.append(function["arguments"])
            events.append(
                self._item_event(
                    "response.function_call_arguments.delta", delta=function["arguments"]
                )
            )
        return events

    def _open_item(self) -> _OpenItem:
        if self._open is None:
            raise RuntimeError("no output item is open")
        return self._open

    def _add(self, open_item: _OpenItem) -> list[Event]:
        self._open = open_item
        self.output.append(open_item.item)
        return [
            self._event(
                "response.output_item.added",
                output_index=len(self.output) - 1,
                item=dict(open_item.item),
            )
        ]

    def _close(self, status: str) -> list[Event]:
        """The ``.done`` events of the open item, which takes its final form in ``output``."""
        open_item, self._open = self._open, None
        if open_item is None:
            return []
        text = "".join(open_item.text)
        item = open_item.item
        events: list[Event] = []
        if open_item.call_index is None:
            item.update(status=status, content=[text_part(text)])
            events.append(
                self._item_event(
                    "response.output_text.done", item=item, content_index=0, text=text, logprobs=[]
                )
            )
            events.append(self._part_event("response.content_part.done", text_part(text), item))
        else:
            item.update(status="completed", arguments=text)
            events.append(
                self._item_event("response.function_call_arguments.done", item=item, arguments=text)
            )
        events.append(
            self._event(
                "response.output_item.done", output_index=len(self.output) - 1, item=dict(item)
            )
        )
        return events

    def _part_event(
        self, kind: str, part: dict[str, Any], item: dict[str, Any] | None = None
    ) -> Event:
        return self._item_event(kind, item=item, content_index=0, part=part)

    def _item_event(self, kind: str, item: dict[str, Any] | None = None, **fields: Any) -> Event:
        """An event about the open (or just closed) item: ``item_id`` and ``output_index``."""
        if item is None:
            item = self._open_item().item
        return self._event(kind, item_id=item["id"], output_index=len(self.output) - 1, **fields)

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _response(self, status: Status, error: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return response_body(
            self._request,
            response_id=self.response_id,
            created_at=self._created_at,
            status=status,
            output=self.output if status != "in_progress" else (),
            usage=self._usage if status != "in_progress" else None,
            error=error,
        )


async def response_events(
    events: ResponseEvents, chunks: AsyncIterator[Mapping[str, Any]]
) -> AsyncGenerator[Event, None]:
    """Every event of one streamed response; a ``ServiceError`` mid-stream ends it with
    ``response.failed``. Closing this iterator closes ``chunks`` (which stops generation)."""
    try:
        for event in events.start():
            yield event
        try:
            async for chunk in chunks:
                for event in events.feed(chunk):
                    yield event
        except ServiceError as error:
            for event in events.fail(error):
                yield event
            return
        except Exception:
            logger.exception("unhandled error while streaming a response")
            for event in events.fail(Internal("The server had an error processing your request.")):
                yield event
            return
        for event in events.finish():
            yield event
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
