"""The Triton client's request encoding and error mapping (no server)."""

from __future__ import annotations

import numpy as np
import pytest

from service.engine import map_model_error, parse_chunk, request_inputs
from service.errors import Internal, InvalidRequest, NotFound, Overloaded, Unavailable
from service.generation import SamplingParams
from service.triton_contract import ModelError


def test_request_inputs_carry_only_the_given_options() -> None:
    inputs = request_inputs([5, 6, 7], SamplingParams(max_tokens=9, temperature=0.0))
    names = [tensor.name() for tensor in inputs]
    assert names == ["input_ids", "max_tokens", "temperature", "top_p", "top_k"]
    assert inputs[0].datatype() == "INT32" and inputs[0].shape() == [3]
    params = SamplingParams(
        max_tokens=1, seed=3, stop_token_ids=(2, 4), grammar="start: /a/", grammar_prefill_tokens=2
    )
    full = request_inputs([1], params)
    names = ["seed", "stop_token_ids", "grammar", "grammar_prefill_tokens"]
    assert [t.name() for t in full][-4:] == names
    assert [t.datatype() for t in full][-4:] == ["INT64", "INT32", "BYTES", "INT32"]


@pytest.mark.parametrize(
    ("message", "error_type"),
    [
        (ModelError("overloaded", "the queue is full").to_message(), Overloaded),
        (
            "[request id: <id_unknown>] " + ModelError("invalid", "long", "messages").to_message(),
            InvalidRequest,
        ),
        (ModelError("unavailable", "the model is shutting down").to_message(), Unavailable),
        (ModelError("internal", "decoding failed: RuntimeError").to_message(), Internal),
        ("invalid: an unstructured message is not trusted", Internal),
        ("Request for unknown model: 'x' is not found", NotFound),
        ("something else entirely", Internal),
    ],
)
def test_model_errors_map_to_service_errors(message: str, error_type: type) -> None:
    error = map_model_error(message)
    assert type(error) is error_type


@pytest.mark.parametrize("param", ["messages", "seed", "top_k", "top_p", None])
def test_invalid_requests_keep_their_field_and_text(param: str | None) -> None:
    message = ModelError("invalid", "the prompt has 600 tokens", param).to_message()
    error = map_model_error(f"[request id: 7] {message}")
    assert error.param == param
    assert error.message == "the prompt has 600 tokens"


def test_internal_errors_do_not_leak_details() -> None:
    message = ModelError("internal", "decoding failed: RuntimeError").to_message()
    assert "RuntimeError" not in map_model_error(message).message


class _Result:
    """A Triton stream result with the given output arrays (None: not in the response)."""

    def __init__(self, **outputs: object) -> None:
        self._outputs = outputs

    def as_numpy(self, name: str) -> object:
        return self._outputs.get(name)


def test_parse_chunk_reads_cached_tokens_when_the_model_sends_them() -> None:
    base = {
        "token_ids": np.array([5, 6], dtype=np.int32),
        "finish_reason": np.array([b"stop"], dtype=np.object_),
        "prompt_tokens": np.array([40], dtype=np.int32),
    }
    cached = parse_chunk(_Result(**base, cached_tokens=np.array([39], dtype=np.int32)))
    assert (cached.token_ids, cached.finish_reason, cached.prompt_tokens) == ([5, 6], "stop", 40)
    assert cached.cached_tokens == 39
    assert parse_chunk(_Result(**base)).cached_tokens == 0
