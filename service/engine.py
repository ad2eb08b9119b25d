"""The Triton client: streams token ids from the decoupled ``llm`` model over gRPC.

One :class:`TritonEngine` holds one channel shared by any number of concurrent ``generate``
calls; each call is one bidirectional stream carrying one request. Closing the generator early
(or cancelling the task consuming it) cancels the stream, and Triton then cancels the request,
which frees its KV slot at the next decode step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from service import triton_contract as contract
from service.errors import (
    Internal,
    InvalidRequest,
    NotFound,
    Overloaded,
    ServiceError,
    Unavailable,
)
from service.generation import FinishReason, GenerationChunk, SamplingParams

logger = logging.getLogger(__name__)
_UNAVAILABLE = "The inference server is unavailable; retry shortly."

_FINISH_REASONS: dict[str, FinishReason] = {reason: reason for reason in contract.FINISH_REASONS}


_MAX_MESSAGE = 2**31 - 1
# tritonclient's own defaults, plus a short reconnect backoff: a restarted Triton (see
# service.supervisor) is found within a second or two, not after gRPC's default of up to 120 s.
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


class TritonEngine:
    """:class:`service.generation.Engine` over Triton's gRPC streaming API."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client = grpcclient.InferenceServerClient(url, channel_args=_CHANNEL_OPTIONS)

    async def generate(
        self, model: str, prompt_ids: Sequence[int], params: SamplingParams
    ) -> AsyncIterator[GenerationChunk]:
        """Yield new tokens as they come; the last chunk carries ``finish_reason``."""
        request = {"model_name": model, "inputs": request_inputs(prompt_ids, params)}
        finished = asyncio.Event()

        async def requests() -> AsyncIterator[dict[str, Any]]:
            yield request
            await finished.wait()  # keep the stream open until the final response

        stream = self._client.stream_infer(requests())
        final = False
        try:
            async for result, error in stream:
                if error is not None:
                    raise map_model_error(str(error))
                chunk = parse_chunk(result)
                final = chunk.finish_reason is not None
                yield chunk
                if final:
                    return
            logger.error("Triton at %s closed the stream before the final response", self._url)
            raise Unavailable(_UNAVAILABLE)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, self._url) from exc
        finally:
            finished.set()  # half-closes the stream
            if final:
                await _drain(stream)
            else:
                stream.cancel()  # an early exit: Triton cancels the request, freeing its slot

    async def is_ready(self, model: str) -> bool:
        """Whether Triton is up and ``model`` is loaded and ready."""
        try:
            return bool(await self._client.is_model_ready(model))
        except (InferenceServerException, grpc.aio.AioRpcError):
            return False

    async def close(self) -> None:
        await self._client.close()


async def _drain(stream: Any, timeout_s: float = 5.0) -> None:
    """Wait for Triton to end a finished stream after our half-close. Cancelling it instead
    races the half-close, and Triton 2.51 then counts a cancelled request: its shutdown waits
    out the exit timeout. (An unread grpc.aio call is cancelled when collected, so read it.)"""

    async def read_to_end() -> None:
        async for _ in stream:
            pass

    try:
        await asyncio.wait_for(read_to_end(), timeout_s)
    except (asyncio.TimeoutError, grpc.aio.AioRpcError):
        stream.cancel()


def request_inputs(prompt_ids: Sequence[int], params: SamplingParams) -> list[Any]:
    """The ``llm`` model's input tensors for one request (see docs/triton_model.md)."""
    c = contract
    tensors: list[tuple[str, np.ndarray]] = [
        (c.INPUT_IDS, np.asarray(prompt_ids, dtype=np.int32)),
        (c.MAX_TOKENS, np.array([params.max_tokens], dtype=np.int32)),
        (c.TEMPERATURE, np.array([params.temperature], dtype=np.float32)),
        (c.TOP_P, np.array([params.top_p], dtype=np.float32)),
        (c.TOP_K, np.array([params.top_k], dtype=np.int32)),
    ]
    if params.seed is not None:
        tensors.append((c.SEED, np.array([params.seed], dtype=np.int64)))
    if params.stop_token_ids:
        tensors.append((c.STOP_TOKEN_IDS, np.asarray(params.stop_token_ids, dtype=np.int32)))
    if params.grammar:
        tensors.append((c.GRAMMAR, np.array([params.grammar.encode()], dtype=np.object_)))
        prefill = np.array([params.grammar_prefill_tokens], dtype=np.int32)
        tensors.append((c.GRAMMAR_PREFILL_TOKENS, prefill))
    inputs = []
    for name, array in tensors:
        tensor = grpcclient.InferInput(name, list(array.shape), _datatype(array))
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def parse_chunk(result: Any) -> GenerationChunk:
    """One streamed response as a :class:`GenerationChunk`."""
    reason = result.as_numpy(contract.FINISH_REASON).reshape(-1)[0]
    reason = reason.decode() if isinstance(reason, bytes) else str(reason)
    return GenerationChunk(
        token_ids=[int(t) for t in result.as_numpy(contract.TOKEN_IDS).reshape(-1)],
        finish_reason=_FINISH_REASONS.get(reason) if reason else None,
        prompt_tokens=int(result.as_numpy(contract.PROMPT_TOKENS).reshape(-1)[0]),
        cached_tokens=_optional_int(result, contract.CACHED_TOKENS),
    )


def _optional_int(result: Any, name: str) -> int:
    """A scalar output a model may not have (an ``llm`` built before it was added): 0."""
    array = result.as_numpy(name)
    return 0 if array is None else int(array.reshape(-1)[0])


def map_model_error(message: str) -> ServiceError:
    """A Triton error message (carrying a ``contract.ModelError``) as a service error."""
    error = contract.ModelError.from_message(message)
    if error is None:
        if "unknown model" in message or "is not found" in message:
            return NotFound("The model is not served.", code="model_not_found")
        logger.error("unexpected error from Triton: %s", message)
        return Internal("the inference server failed")
    if error.kind == "invalid":
        return InvalidRequest(error.message, param=error.param)
    if error.kind == "overloaded":
        return Overloaded(error.message)
    if error.kind == "unavailable":
        return Unavailable(error.message)
    logger.error("model error: %s", error.message)
    return Internal("the model failed while generating")


def map_rpc_error(error: grpc.aio.AioRpcError, url: str) -> ServiceError:
    """A gRPC failure of the stream itself (Triton down, connection lost) as a service error.
    Triton's address goes to the log, never to the client."""
    if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        logger.warning("Triton at %s is unavailable: %s", url, error.details())
        return Unavailable(_UNAVAILABLE)
    logger.error("Triton stream failed: %s %s", error.code(), error.details())
    return Internal("the inference server failed")


def _datatype(array: np.ndarray) -> str:
    return {
        np.dtype(np.int32): "INT32",
        np.dtype(np.int64): "INT64",
        np.dtype(np.float32): "FP32",
        np.dtype(np.object_): "BYTES",
    }[array.dtype]
