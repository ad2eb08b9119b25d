"""ModelRegistry: served models from a Triton repository (built artifacts copied to a tmp dir)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.errors import ModelNotFound
from service.models import ModelRegistry
from service.toolcalls.hermes import HermesParser
from service.toolcalls.smollm2 import SmolLM2Parser
from tests.unit.served import REPOSITORY, served_model

ARTIFACTS = ("model_card.json", "tokenizer.json", "chat_template.jinja")


def _copy(triton_model: str, repository: Path, name: str, max_seq_len: int | None) -> None:
    served_model(triton_model)  # skip when not built
    target = repository / name / "1"
    target.mkdir(parents=True)
    for artifact in ARTIFACTS:
        shutil.copy(REPOSITORY / triton_model / "1" / artifact, target / artifact)
    if max_seq_len is not None:
        (repository / name / "config.pbtxt").write_text(
            'backend: "python"\n'
            f'parameters: {{ key: "max_seq_len", value: {{ string_value: "{max_seq_len}" }} }}\n'
        )


def test_load_two_models(tmp_path: Path) -> None:
    _copy("llm", tmp_path, "qwen-a", 1024)
    _copy("smollm2", tmp_path, "small", None)
    registry = ModelRegistry.load(tmp_path, ["qwen-a", "small"])
    qwen = registry.get("qwen2.5-coder-0.5b-instruct")
    smol = registry.get("smollm2-135m-instruct")
    assert (qwen.triton_model, qwen.dialect, qwen.native_tools) == ("qwen-a", HermesParser, True)
    assert (smol.triton_model, smol.dialect, smol.native_tools) == ("small", SmolLM2Parser, False)
    assert (qwen.max_context, smol.max_context) == (1024, 8192)  # engine slot vs card context
    assert qwen.fingerprint.startswith(f"fncall-{qwen.card.precision}-")
    assert len(qwen.fingerprint) == len("fncall-int8-") + 10
    assert qwen.template.eos_token == "<|im_end|>"
    assert [m.id for m in registry] == [qwen.id, smol.id] and len(registry) == 2


def test_unknown_model_is_a_404_on_model(tmp_path: Path) -> None:
    _copy("smollm2", tmp_path, "small", None)
    with pytest.raises(ModelNotFound) as info:
        ModelRegistry.load(tmp_path, ["small"]).get("gpt-4o")
    assert (info.value.param, info.value.code) == ("model", "model_not_found")


def test_two_folders_serving_one_id_are_refused(tmp_path: Path) -> None:
    _copy("smollm2", tmp_path, "a", None)
    _copy("smollm2", tmp_path, "b", None)
    with pytest.raises(ValueError, match="same model id"):
        ModelRegistry.load(tmp_path, ["a", "b"])
