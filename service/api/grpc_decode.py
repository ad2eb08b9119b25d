"""Requests whose bytes do not decode (invalid UTF-8, truncated, nested past protobuf's limit)
are the client's mistake: ``INVALID_ARGUMENT``, not the ``UNKNOWN`` grpc answers by default.

An interceptor swaps each unary-request method's deserializer for one that cannot raise and
answers an undecodable request before the servicer sees it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from service.errors import InvalidRequest

_MESSAGE = "The request could not be decoded as a protobuf message of this method."


class _Undecodable:
    """Stands in for a request whose bytes did not decode."""


_UNDECODABLE = _Undecodable()


class UndecodableRequests(grpc.aio.ServerInterceptor):
    """Answers undecodable unary requests with ``INVALID_ARGUMENT``."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        deserialize = _safe(handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary),
                request_deserializer=deserialize,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream),
                request_deserializer=deserialize,
                response_serializer=handler.response_serializer,
            )
        return handler


def _safe(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def safe(data: bytes) -> Any:
        try:
            return deserialize(data)
        except (DecodeError, RecursionError, ValueError):
            return _UNDECODABLE

    return safe


async def _refuse(context: grpc.aio.ServicerContext) -> None:
    await context.abort(InvalidRequest(_MESSAGE).kind.grpc_code, _MESSAGE)


def _unary(behavior: Callable[[Any, grpc.aio.ServicerContext], Any]) -> Any:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request is _UNDECODABLE:
            await _refuse(context)
        return await behavior(request, context)

    return unary


def _streaming(behavior: Callable[[Any, grpc.aio.ServicerContext], Any]) -> Any:
    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if request is _UNDECODABLE:
            await _refuse(context)
        result = behavior(request, context)
        if inspect.isasyncgen(result):
            async for response in result:
                yield response
        else:  # a coroutine that writes with context.write
            await result

    return streaming
