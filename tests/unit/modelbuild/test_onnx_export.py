"""Checkpoint reading and ONNX export: graph logits against transformers on the same weights."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from service.modelbuild.checkpoint import Checkpoint, ModelConfig, load_checkpoint
from service.modelbuild.errors import BuildError
from service.modelbuild.gguf_checkpoint import unpermute_rotary
from service.modelbuild.hf_checkpoint import config_from_hf
from service.modelbuild.onnx_export import export_onnx
from tests.unit.models import QWEN, SMOLLM, packaged_gguf
from tests.unit.onnx_reference import (
    FP32_LOGIT_TOLERANCE,
    LLAMA3_ROPE,
    PROMPTS,
    _llama_cpp_permute,
    export_source,
    packaged_prompts,
    reference_model,
    tiny_hf_model,
    write_llama_gguf,
)

HF_CONFIG = {
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 320,
    "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
    "max_position_embeddings": 256,
}


def test_unpermute_inverts_llama_cpp_permutation() -> None:
    weight = np.random.default_rng(0).standard_normal((3 * 64, 40)).astype(np.float32)
    assert np.array_equal(unpermute_rotary(_llama_cpp_permute(weight, 3), 3), weight)
    bias = np.arange(3 * 64, dtype=np.float32)
    assert np.array_equal(unpermute_rotary(_llama_cpp_permute(bias, 3), 3), bias)


def test_hf_config_reads_transformers5_rope_parameters() -> None:
    config = config_from_hf(HF_CONFIG)
    assert config.rope_theta == 500000.0
    assert config.head_dim == 32
    assert not config.attention_bias
    assert config_from_hf({**HF_CONFIG, "model_type": "qwen2"}).attention_bias


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "gpt2"}, "unsupported architecture"),
        ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0}}, "unsupported rope"),
        ({"rope_parameters": {"rope_type": "llama3", "factor": 4.0}}, "lacks low_freq_factor"),
    ],
)
def test_hf_config_rejects_what_the_exporter_cannot_build(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(BuildError, match=message):
        config_from_hf({**HF_CONFIG, **change})


class _Partial(Checkpoint):
    def names(self) -> list[str]:
        return ["model.embed_tokens.weight"]

    def tensor(self, name: str) -> np.ndarray:
        raise AssertionError("not read")


def test_missing_tensor_is_a_build_error() -> None:
    with pytest.raises(BuildError, match=r"lacks tensor model\.norm\.weight"):
        _Partial(config_from_hf(HF_CONFIG)).check_complete()


def test_unknown_source_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="neither"):
        load_checkpoint(tmp_path / "missing.bin")
    with pytest.raises(BuildError, match=r"no config\.json"):
        load_checkpoint(tmp_path)


def prefill_logits(model_path: Path, prompts: list[list[int]]) -> np.ndarray:
    """One raw graph call: the prompts right-padded into one batch, fresh caches, last logits."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    longest = max(map(len, prompts))
    ids = np.zeros((len(prompts), longest), dtype=np.int64)
    for row, prompt in enumerate(prompts):
        ids[row, : len(prompt)] = prompt
    lengths = np.array([len(p) for p in prompts])
    feeds: dict[str, np.ndarray] = {
        "input_ids": ids,
        "seqlens_k": (lengths - 1).astype(np.int32),
        "total_sequence_length": np.array(longest, dtype=np.int32),
        "logits_index": lengths - 1,
    }
    for meta in session.get_inputs():
        if meta.name.startswith("past_key_values."):
            dtype = np.float16 if meta.type == "tensor(float16)" else np.float32
            shape = (len(prompts), meta.shape[1], longest + 8, meta.shape[3])
            feeds[meta.name] = np.zeros(shape, dtype=dtype)
    return np.asarray(session.run(["logits"], feeds)[0])


def reference_last_logits(model: object, prompts: list[list[int]]) -> np.ndarray:
    import torch

    with torch.no_grad():
        rows = [model(torch.tensor([p])).logits[0, -1].numpy() for p in prompts]  # type: ignore[operator]
    return np.stack(rows)


@pytest.fixture(scope="module", params=[("llama", "float32"), ("qwen2", "bfloat16")])
def tiny_hf(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    architecture, dtype = request.param
    return tiny_hf_model(tmp_path_factory.mktemp(architecture) / "hf", architecture, dtype)


@pytest.mark.reference
def test_hf_folder_export_matches_reference(tiny_hf: Path, tmp_path: Path) -> None:
    model_path = export_source(tiny_hf, tmp_path / "onnx")
    expected = reference_last_logits(reference_model(tiny_hf), PROMPTS)
    got = prefill_logits(model_path, PROMPTS)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4


@pytest.mark.reference
def test_lower_precisions_track_fp32(tiny_hf: Path, tmp_path: Path) -> None:
    fp32 = prefill_logits(export_source(tiny_hf, tmp_path / "fp32"), PROMPTS)
    fp16 = prefill_logits(export_source(tiny_hf, tmp_path / "fp16", "fp16"), PROMPTS)
    int8 = prefill_logits(export_source(tiny_hf, tmp_path / "int8", "int8"), PROMPTS)
    int4 = prefill_logits(export_source(tiny_hf, tmp_path / "int4", "int4"), PROMPTS)
    scale = np.abs(fp32).max()
    assert np.abs(fp16 - fp32).max() < 0.01 * scale
    # 8-bit blocks track fp32 far closer than 4-bit ones.
    assert np.abs(int8 - fp32).max() < 0.25 * np.abs(int4 - fp32).max()
    assert np.corrcoef(int8.ravel(), fp32.ravel())[0, 1] > 0.999
    assert np.abs(int4 - fp32).max() < 0.25 * scale
    assert np.corrcoef(int4.ravel(), fp32.ravel())[0, 1] > 0.95


@pytest.mark.reference
def test_export_writes_external_data_and_facts(tiny_hf: Path, tmp_path: Path) -> None:
    checkpoint = load_checkpoint(tiny_hf)
    messages: list[str] = []
    facts = export_onnx(checkpoint, tmp_path, "int4", messages.append)
    json.dumps(facts)  # the model card stores it as JSON
    data = tmp_path / "model.onnx.data"
    assert facts["files"]["model.onnx.data"] == data.stat().st_size > 0
    assert facts["rotary_max_positions"] == checkpoint.config.context_length == 256
    assert facts["quantization"]["block_size"] == 32
    assert any("layer 2/2" in m for m in messages)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    names = {meta.name for meta in session.get_inputs()}
    assert {"input_ids", "seqlens_k", "total_sequence_length", "logits_index"} <= names
    assert "past_key_values.1.value" in names
    assert [m.name for m in session.get_outputs()][:2] == ["logits", "present.0.key"]


def test_unknown_precision_is_a_build_error(tmp_path: Path) -> None:
    config = ModelConfig("llama", 1, 64, 128, 2, 1, 32, 10, 1e4, 1e-6, 64, True, False)
    with pytest.raises(BuildError, match="unknown precision"):
        export_onnx(_Partial(config), tmp_path, "int3", lambda _: None)


@pytest.mark.slow
@pytest.mark.reference
@pytest.mark.parametrize(("name", "count"), [(SMOLLM, 3), (QWEN, 2)])
def test_packaged_gguf_export_matches_reference(name: str, count: int, tmp_path: Path) -> None:
    gguf_path = packaged_gguf(name)
    prompts = packaged_prompts(gguf_path, count)
    got = prefill_logits(export_source(gguf_path, tmp_path), prompts)
    expected = reference_last_logits(reference_model(gguf_path), prompts)
    assert np.abs(got - expected).max() < FP32_LOGIT_TOLERANCE
    assert (got.argmax(-1) == expected.argmax(-1)).all()


@pytest.mark.reference
def test_llama3_rope_gguf_and_hf_match_reference(tmp_path: Path) -> None:
    """A llama with llama3 RoPE scaling: the HF folder and the same weights written as
    llama.cpp would (permuted q/k, F16 tensors, ``rope_freqs``) both match transformers."""
    folder = tiny_hf_model(tmp_path / "hf", "llama", rope=LLAMA3_ROPE)
    hf = load_checkpoint(folder)
    divisors = np.array(hf.config.rope_freq_factors)
    assert divisors.min() == 1.0 and divisors.max() == 8.0  # both ends of llama3's blend
    gguf_checkpoint = load_checkpoint(write_llama_gguf(folder, tmp_path / "m.gguf", divisors))
    got_config = gguf_checkpoint.config  # GGUF stores float32 metadata
    assert got_config.rms_norm_eps == pytest.approx(hf.config.rms_norm_eps)
    assert np.allclose(got_config.rope_freq_factors or (), divisors)
    assert replace(got_config, rms_norm_eps=1e-6, rope_freq_factors=None) == replace(
        hf.config, rms_norm_eps=1e-6, rope_freq_factors=None
    )
    for name in hf.names():
        expected = hf.tensor(name)
        got = gguf_checkpoint.tensor(name)
        assert np.abs(got - expected).max() <= 1e-3 * np.abs(expected).max(), name

    expected_logits = reference_last_logits(reference_model(folder), PROMPTS)
    for source in (folder, tmp_path / "m.gguf"):
        got = prefill_logits(export_source(source, tmp_path / f"onnx-{source.name}"), PROMPTS)
        assert np.abs(got - expected_logits).max() < 1e-3, source.name
