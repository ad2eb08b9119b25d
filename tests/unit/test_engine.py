"""The Triton client's request encoding and error mapping (no server)."""

from __future__ import annotations

import pytest

from service.engine import map_model_error, request_inputs
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
