"""Test helpers for the ONNX decoder: tiny random HF models and the transformers reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.modelbuild.checkpoint import load_checkpoint
from service.modelbuild.onnx_export import export_onnx

# Prompts as token ids (valid for every vocabulary used here: all ids < 320).
PROMPTS = [
    [1, 17, 203, 45, 9, 88, 120, 7, 64, 301, 2, 33],
    [5, 77, 31],
    [250, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30],
]
FP32_LOGIT_TOLERANCE = 1e-3  # max |onnx - reference| over the vocabulary, fp32 graph


LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 10000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,  # wavelengths 6..35000: all three llama3 regimes
}


def tiny_hf_model(
    folder: Path, architecture: str, dtype: str = "float32", rope: dict[str, Any] | None = None
) -> Path:
    """A randomly initialized 2-layer llama/qwen2 saved as ``config.json`` + safetensors."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config_class = {"llama": "LlamaConfig", "qwen2": "Qwen2Config"}[architecture]
    config = getattr(transformers, config_class)(
        vocab_size=320,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        tie_word_embeddings=architecture == "llama",
        **({"rope_parameters": rope} if rope else {}),
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # random biases, so the bias path is exercised with non-zero values
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.5)
    model.to(getattr(torch, dtype)).save_pretrained(folder)
    return folder


def reference_model(source: Path) -> Any:
    """The transformers model (float32) of a GGUF file or an HF folder."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if source.is_file():
        kwargs["gguf_file"] = source.name
        source = source.parent
    return transformers.AutoModelForCausalLM.from_pretrained(source, **kwargs).eval()


def reference_greedy(model: Any, prompt: list[int], steps: int) -> tuple[list[int], np.ndarray]:
    """Greedy continuation by transformers: the new tokens and the logits ``[steps, vocab]``."""
    import torch

    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=steps,
            min_new_tokens=steps,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=0,
        )
    tokens = out.sequences[0, len(prompt) :].tolist()
    logits = np.stack([step[0].float().numpy() for step in out.logits])
    return tokens, logits


def export_source(source: Path, out_dir: Path, precision: str = "fp32") -> Path:
    """Export a GGUF file or HF folder; returns the path of ``model.onnx``."""
    export_onnx(load_checkpoint(source), out_dir, precision, lambda _: None)
    return out_dir / "model.onnx"


TEXTS = [
    "<|im_start|>user\nWrite a Python function that adds two numbers.<|im_end|>\n"
    "<|im_start|>assistant\n",
    "The capital of France is",
    "def fibonacci(n):\n    ",
]


def packaged_prompts(gguf_path: Path, count: int) -> list[list[int]]:
    """The first ``count`` of ``TEXTS`` tokenized with the model's own (GGUF) tokenizer."""
    from service.modelbuild.gguf_metadata import read_gguf_metadata
    from service.modelbuild.tokenizer import gguf_tokenizer

    tokenizer = gguf_tokenizer(read_gguf_metadata(gguf_path)).tokenizer
    return [list(tokenizer.encode(text, add_special_tokens=False).ids) for text in TEXTS[:count]]


def _llama_cpp_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """What llama.cpp's convert_hf_to_gguf does to llama q/k weights."""
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def write_llama_gguf(folder: Path, path: Path, rope_freqs: np.ndarray | None) -> Path:
    """The tiny HF llama of ``folder`` as llama.cpp would write it: GGUF names, permuted q/k,
    F32/F16 tensors, optional ``rope_freqs`` divisors."""
    import gguf

    from service.modelbuild.hf_checkpoint import HFCheckpoint

    hf = HFCheckpoint(folder)
    c = hf.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(c.num_layers)
    writer.add_context_length(c.context_length)
    writer.add_embedding_length(c.hidden_size)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(c.num_heads)
    writer.add_head_count_kv(c.num_kv_heads)
    writer.add_rope_freq_base(c.rope_theta)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_tensor("token_embd.weight", hf.tensor("model.embed_tokens.weight"))
    writer.add_tensor("output_norm.weight", hf.tensor("model.norm.weight"))
    if rope_freqs is not None:
        writer.add_tensor("rope_freqs.weight", rope_freqs.astype(np.float32))
    names = {
        "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    for layer in range(c.num_layers):
        for short, long in names.items():
            weight = hf.tensor(f"model.layers.{layer}.{long}.weight")
            if short == "attn_q":
                weight = _llama_cpp_permute(weight, c.num_heads)
            elif short == "attn_k":
                weight = _llama_cpp_permute(weight, c.num_kv_heads)
            if weight.ndim == 2 and short != "attn_v":
                weight = weight.astype(np.float16)  # F16 covers a second tensor type
            writer.add_tensor(f"blk.{layer}.{short}.weight", weight)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
