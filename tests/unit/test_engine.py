"""The Triton client's request encoding and error mapping (no server)."""

from __future__ import annotations

import pytest

from service.engine import map_model_error, request_inputs
from service.errors import Internal, InvalidRequest, NotFound, Overloaded, Unavailable
from service.generation import SamplingParams


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
        ("overloaded: the queue is full (4 waiting requests)", Overloaded),
        ("[request id: <id_unknown>] invalid: the prompt has 600 tokens", InvalidRequest),
        ("unavailable: the model is shutting down", Unavailable),
        ("internal: decoding failed: RuntimeError", Internal),
        ("Request for unknown model: 'x' is not found", NotFound),
        ("something else entirely", Internal),
    ],
)
def test_model_errors_map_to_service_errors(message: str, error_type: type) -> None:
    error = map_model_error(message)
    assert type(error) is error_type


def test_invalid_requests_point_at_messages_and_keep_the_text() -> None:
    error = map_model_error("invalid: the prompt has 600 tokens")
    assert error.param == "messages"
    assert error.message == "the prompt has 600 tokens"


def test_internal_errors_do_not_leak_details() -> None:
    assert "RuntimeError" not in map_model_error("internal: decoding failed: RuntimeError").message
