"""The Triton boundary's error payload survives Triton's prefixes and rejects look-alikes."""

from __future__ import annotations

import pytest

from service.triton_contract import ModelError


@pytest.mark.parametrize("prefix", ["", "[request id: <id_unknown>] ", "in ensemble 'x': "])
def test_errors_round_trip_through_a_triton_message(prefix: str) -> None:
    error = ModelError("invalid", 'top_p must lie in (0, 1] — "quoted" {braces}', "top_p")
    assert ModelError.from_message(prefix + error.to_message()) == error


@pytest.mark.parametrize(
    "message",
    ["invalid: text", '{"kind": "odd", "message": "x"}', '{"kind": "invalid", ', ""],
)
def test_messages_without_a_model_error(message: str) -> None:
    assert ModelError.from_message(message) is None
