"""The gRPC face (``fncall.v1.ChatCompletions``) with standard health checking and reflection."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service import metrics
from service.api.grpc_convert import completion_to_proto, models_to_proto, request_to_openai
from service.api.grpc_decode import UndecodableRequests
from service.api.proto.fncall.v1 import chat_pb2, chat_pb2_grpc
from service.auth import ApiKeys
from service.errors import Internal, ServiceError, Unavailable
from service.lifecycle import Draining
from service.logs import REQUEST_ID, REQUEST_ID_HEADER, new_request_id

if TYPE_CHECKING:
    from service.chat import ChatService

logger = logging.getLogger(__name__)

SERVICE_NAME = chat_pb2.DESCRIPTOR.services_by_name["ChatCompletions"].full_name


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key:
            return str(item.value)
    return None


async def _abort(context: grpc.aio.ServicerContext, err: ServiceError) -> NoReturn:
    await context.abort(err.kind.grpc_code, err.message, trailing_metadata=err.trailers())
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


class ChatCompletionsServicer(chat_pb2_grpc.ChatCompletionsServicer):
    """Translates protobuf to ``ChatService`` calls and back; holds no logic of its own."""

    def __init__(self, chat: ChatService, api_keys: ApiKeys, draining: Draining) -> None:
        self._chat = chat
        self._api_keys = api_keys
        self._draining = draining

    async def _begin(self, context: grpc.aio.ServicerContext) -> None:
        request_id = new_request_id(_metadata(context, REQUEST_ID_HEADER))
        REQUEST_ID.set(request_id)
        await context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
        self._api_keys.check(_metadata(context, "authorization"))

    async def Create(
        self, request: chat_pb2.ChatCompletionRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.ChatCompletion:
        with metrics.track_request("grpc", unresolved=grpc.StatusCode.INTERNAL.name) as outcome:
            try:
                await self._begin(context)
                if self._draining.active:
                    raise Unavailable("The server is shutting down.", code="shutting_down")
                result = await self._chat.create(request_to_openai(request))
            except ServiceError as err:
                outcome.status = err.kind.grpc_code.name
                await _abort(context, err)
            except asyncio.CancelledError:
                outcome.status = grpc.StatusCode.CANCELLED.name
                raise
            except Exception:
                logger.exception("unhandled error")
                await _abort(context, Internal("The server had an error processing your request."))
            outcome.status = grpc.StatusCode.OK.name
            return completion_to_proto(result)

    async def CreateStream(
        self, request: chat_pb2.ChatCompletionRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "streaming is not supported yet")

    async def ListModels(
        self, request: chat_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.ListModelsResponse:
        try:
            await self._begin(context)
        except ServiceError as err:
            await _abort(context, err)
        return models_to_proto(self._chat.list_models())


class GrpcServer:
    """The async gRPC server: our service, ``grpc.health.v1`` and server reflection."""

    def __init__(
        self,
        chat: ChatService,
        api_keys: ApiKeys,
        draining: Draining,
        *,
        max_message_bytes: int,
    ) -> None:
        self.server = grpc.aio.server(
            interceptors=[UndecodableRequests()],
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ],
        )
        self._chat = chat
        self.health = health.aio.HealthServicer()
        chat_pb2_grpc.add_ChatCompletionsServicer_to_server(
            ChatCompletionsServicer(chat, api_keys, draining), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )

    def bind(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = any free port); returns the bound port."""
        bound = self.server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {host}:{port}")
        return bound

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING (Triton and models ready) or NOT_SERVING on every health name."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def watch_readiness(self, draining: Draining, period_s: float = 2.0) -> None:
        """Keep the health status in step with ``ChatService.ready`` until cancelled."""
        while True:
            await self.set_serving(not draining.active and await self._chat.ready())
            await asyncio.sleep(period_s)
