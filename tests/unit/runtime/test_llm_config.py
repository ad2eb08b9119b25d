"""Parsing the llm model's config.pbtxt parameters."""

from __future__ import annotations

import pytest

from service.runtime.llm_config import LlmConfig


def test_parameters_are_read_from_triton_json() -> None:
    config = LlmConfig.from_triton(
        {
            "max_active_sequences": {"string_value": "8"},
            "max_queue": {"string_value": " 3 "},
            "execution_provider": {"string_value": "cpu"},
            "prefix_cache": {"string_value": "0"},
        }
    )
    assert (config.max_active_sequences, config.max_queue, config.provider()) == (8, 3, "cpu")
    assert config.prefix_cache == 0 and LlmConfig().prefix_cache == 1
    assert config.max_seq_len == LlmConfig().max_seq_len


def test_auto_falls_back_to_cpu_without_cuda() -> None:
    assert LlmConfig().provider() in ("cpu", "cuda")
    assert LlmConfig(execution_provider="cuda").provider() == "cuda"


@pytest.mark.parametrize(
    "parameters",
    [
        {"max_active_sequences": {"string_value": "0"}},
        {"max_queue": {"string_value": "many"}},
        {"execution_provider": {"string_value": "tpu"}},
        {"max_total_kv_tokens": {"string_value": "-1"}},
        {"prefix_cache": {"string_value": "2"}},
    ],
)
def test_bad_parameters_are_rejected(parameters: dict[str, dict[str, str]]) -> None:
    with pytest.raises(ValueError):
        LlmConfig.from_triton(parameters)
