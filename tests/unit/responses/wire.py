"""Checks against the official SDK's Responses types (the wire shapes OpenAI documents)."""

from __future__ import annotations

import typing
from typing import Any

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel


def _event_classes() -> dict[str, type[BaseModel]]:
    """Each stream event class of the SDK by its ``type`` literal."""
    union = typing.get_args(ResponseStreamEvent)[0]  # Annotated[Union[...], discriminator]
    classes = {}
    for cls in typing.get_args(union):
        (kind,) = typing.get_args(cls.model_fields["type"].annotation)
        classes[kind] = cls
    return classes


_EVENTS = _event_classes()


def sdk_response(body: dict[str, Any]) -> Response:
    """``body`` validated strictly as the SDK's ``Response``."""
    return Response.model_validate(body)


def sdk_event(event: dict[str, Any]) -> BaseModel:
    """``event`` validated strictly as the SDK's event class of its ``type``."""
    return _EVENTS[event["type"]].model_validate(event)
