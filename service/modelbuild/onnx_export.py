"""Export a llama-family checkpoint to one ONNX decoder graph with a shared-buffer KV cache.

The graph is written node by node with ``onnx.helper`` around ONNX Runtime's fused contrib ops:
``SimplifiedLayerNormalization`` / ``SkipSimplifiedLayerNormalization`` (RMSNorm with the
residual add fused), ``GroupQueryAttention`` (rotary embedding, causal attention and the KV cache
write in one op; positions come from ``seqlens_k``) and, for ``int4``, ``MatMulNBits``.
The I/O contract is documented in ``docs/onnx_model.md``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from service.modelbuild.checkpoint import Checkpoint, ModelConfig
from service.modelbuild.errors import BuildError
from service.modelbuild.onnx_weights import (
    INT4_BLOCK_SIZE,
    ExternalDataWriter,
    QuantizedWeight,
    quantize_blockwise,
)
from service.modelbuild.rope import base_inv_freq

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "int4")
WEIGHT_BITS = {"int8": 8, "int4": 4}  # MatMulNBits precisions
OPSET = 17
MS_DOMAIN = "com.microsoft"
MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
QK_BEFORE_SOFTMAX = 1  # GroupQueryAttention qk_output: selects the CPU kernel's GEMM path
INT4_ACCURACY_LEVEL = 4  # MatMulNBits computes with int8 activations on CPU
LM_HEAD_BITS = 8  # int4 models keep an 8-bit lm_head: top-1 agreement drops markedly at 4 bits


def past_names(layer: int) -> tuple[str, str]:
    """Graph input names of one layer's KV cache."""
    return f"past_key_values.{layer}.key", f"past_key_values.{layer}.value"


def present_names(layer: int) -> tuple[str, str]:
    """Graph output names of one layer's KV cache (bind them to the past buffers)."""
    return f"present.{layer}.key", f"present.{layer}.value"


def scores_name(layer: int) -> str:
    """Graph output name of one layer's attention scores (CPU precisions: write-only scratch)."""
    return f"attention_scores.{layer}"


def uses_gemm_attention(precision: str) -> bool:
    """Whether the graph's attention takes ONNX Runtime's CPU GEMM path (see ``_attention``)."""
    return precision != "fp16"


def rotary_cache(config: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """``cos``/``sin`` tables ``[context_length, head_dim / 2]``, computed as transformers does."""
    inv_freq = base_inv_freq(config.head_dim, config.rope_theta)
    if config.rope_freq_factors is not None:
        inv_freq = inv_freq / np.asarray(config.rope_freq_factors, dtype=np.float32)
    positions = np.arange(config.context_length, dtype=np.float32)
    freqs = np.outer(positions, inv_freq.astype(np.float32)).astype(np.float32)
    return np.cos(freqs), np.sin(freqs)


def _value_info(name: str, elem_type: int, shape: list[str | int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


class _DecoderGraph:
    """Builds the decoder graph for one checkpoint and precision, writing weights as it goes."""

    def __init__(self, ckpt: Checkpoint, writer: ExternalDataWriter, precision: str) -> None:
        self.ckpt = ckpt
        self.cfg = ckpt.config
        self.writer = writer
        self.precision = precision
        self.weight_bits = WEIGHT_BITS.get(precision)  # None: plain MatMul weights
        self.act_dtype = np.float16 if precision == "fp16" else np.float32
        self.act_type = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.FLOAT
        self.nodes: list[onnx.NodeProto] = []
        self._names = set(ckpt.names())
        self._count = 0

    # -- helpers -------------------------------------------------------------------------------

    def node(
        self, op: str, inputs: list[str], outputs: int = 1, domain: str = "", **attrs: Any
    ) -> list[str]:
        """Append one node; returns its output names."""
        self._count += 1
        name = f"{op}_{self._count}"
        names = [f"{name}/out{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=name, domain=domain, **attrs))
        return names

    def const(self, name: str, array: np.ndarray) -> str:
        """A float initializer in the activation dtype."""
        return self.writer.add(name, array.astype(self.act_dtype))

    def weight(self, name: str) -> str:
        """A checkpoint tensor as an initializer in the activation dtype."""
        return self.const(name, self.ckpt.tensor(name))

    def linear(
        self,
        x: str,
        name: str,
        weight: np.ndarray,
        bias: np.ndarray | None,
        bits: int | None = None,
    ) -> str:
        """``x @ weight.T (+ bias)`` for a ``[out, in]`` weight: MatMul, or MatMulNBits for the
        quantized precisions (``bits`` overrides the precision's weight bits)."""
        if self.weight_bits is not None:
            quant = quantize_blockwise(weight.T, bits or self.weight_bits)
            inputs = [
                x,
                self.writer.add(f"{name}.qweight", quant.packed),
                self.writer.add(f"{name}.scales", quant.scales),
                self.writer.add(f"{name}.zero_points", quant.zero_points),
            ]
            (out,) = self.node("MatMulNBits", inputs, domain=MS_DOMAIN, **nbits_attributes(quant))
        else:
            (out,) = self.node("MatMul", [x, self.const(f"{name}.weight_t", weight.T)])
        if bias is not None:
            (out,) = self.node("Add", [out, self.const(f"{name}.bias", bias)])
        return out

    def skip_norm(self, x: str, residual: str, gamma: str) -> tuple[str, str]:
        """RMSNorm of ``x + residual``; returns (normed, the sum as the new residual)."""
        normed, _, _, total = self.node(
            "SkipSimplifiedLayerNormalization",
            [x, residual, self.weight(gamma)],
            outputs=4,
            domain=MS_DOMAIN,
            epsilon=self.cfg.rms_norm_eps,
        )
        self.nodes[-1].output[1] = ""
        self.nodes[-1].output[2] = ""
        return normed, total

    # -- the model -----------------------------------------------------------------------------

    def build(self, progress: Callable[[str], None]) -> None:
        """Embedding, every layer, final norm, row gather and the lm_head."""
        c = self.cfg
        table = self._embedding_table()
        (x,) = self.node("Gather", [table, "input_ids"])
        if self.weight_bits is not None:
            (x,) = self.node("Cast", [x], to=TensorProto.FLOAT)
        cos, sin = rotary_cache(c)
        self.rotary = (self.const("rotary.cos", cos), self.const("rotary.sin", sin))
        sizes = np.array([c.intermediate_size, c.intermediate_size], dtype=np.int64)
        self.split = self.writer.add("mlp.split_sizes", sizes)
        (hidden,) = self.node(
            "SimplifiedLayerNormalization",
            [x, self.weight("model.layers.0.input_layernorm.weight")],
            axis=-1,
            epsilon=c.rms_norm_eps,
            stash_type=1,
        )
        residual = x
        for i in range(c.num_layers):
            progress(f"exporting layer {i + 1}/{c.num_layers} ({self.precision})")
            prefix = f"model.layers.{i}"
            attn = self._attention(i, hidden)
            hidden, residual = self.skip_norm(
                attn, residual, f"{prefix}.post_attention_layernorm.weight"
            )
            mlp = self._mlp(prefix, hidden)
            last = i + 1 == c.num_layers
            gamma = "model.norm.weight" if last else f"model.layers.{i + 1}.input_layernorm.weight"
            hidden, residual = self.skip_norm(mlp, residual, gamma)
        progress(f"exporting lm_head ({self.precision})")
        self._lm_head(self._gather_rows(hidden), table)

    def _embedding_table(self) -> str:
        """The token embedding (fp16 for int4: only one row per token is ever read)."""
        table = self.ckpt.tensor("model.embed_tokens.weight")
        dtype = np.float16 if self.weight_bits is not None else self.act_dtype
        return self.writer.add("model.embed_tokens.weight", table.astype(dtype))

    def _attention(self, i: int, normed: str) -> str:
        """Fused QKV projection, GroupQueryAttention (RoPE + KV cache write), output projection.

        On the CPU precisions the query comes out of its projection already scaled by
        ``1/sqrt(head_dim)`` (folded into the weights and bias: exact when that is a power of
        two, as for head_dim 64) and the node runs with ``scale`` 1 and a ``qk_output`` nobody
        reads: ONNX Runtime's CPU kernel then takes its MLAS GEMM path instead of its scalar
        flash-attention loop: attention 1.3-1.7x faster (docs/onnx_model.md). The scores are a
        graph output (``attention_scores.{i}``) so that the runtime binds them all to one
        scratch buffer instead of ORT's arena holding every layer's. fp16 (the GPU precision)
        keeps the plain node."""
        c, p = self.cfg, f"model.layers.{i}.self_attn"
        qkv_w = np.concatenate([self.ckpt.tensor(f"{p}.{x}_proj.weight") for x in "qkv"])
        qkv_b = None
        if c.attention_bias:
            qkv_b = np.concatenate([self.ckpt.tensor(f"{p}.{x}_proj.bias") for x in "qkv"])
        scale = 1.0 / math.sqrt(c.head_dim)
        gemm_path = uses_gemm_attention(self.precision)
        if gemm_path:
            q_rows = c.num_heads * c.head_dim
            qkv_w[:q_rows] *= scale
            if qkv_b is not None:
                qkv_b[:q_rows] *= scale
        qkv = self.linear(normed, f"{p}.qkv_proj", qkv_w, qkv_b)
        del qkv_w
        outputs = self.node(
            "GroupQueryAttention",
            [qkv, "", "", *past_names(i), "seqlens_k", "total_sequence_length", *self.rotary],
            outputs=4 if gemm_path else 3,
            domain=MS_DOMAIN,
            num_heads=c.num_heads,
            kv_num_heads=c.num_kv_heads,
            scale=1.0 if gemm_path else scale,
            do_rotary=1,
            rotary_interleaved=0,
            **({"qk_output": QK_BEFORE_SOFTMAX} if gemm_path else {}),
        )
        self.nodes[-1].output[1:3] = list(present_names(i))
        if gemm_path:
            self.nodes[-1].output[3] = scores_name(i)
        o_bias_name = f"{p}.o_proj.bias"
        o_bias = self.ckpt.tensor(o_bias_name) if o_bias_name in self._names else None
        return self.linear(
            outputs[0], f"{p}.o_proj", self.ckpt.tensor(f"{p}.o_proj.weight"), o_bias
        )

    def _mlp(self, prefix: str, normed: str) -> str:
        """SwiGLU with gate and up fused into one projection."""
        p = f"{prefix}.mlp"
        gate_up = np.concatenate(
            [self.ckpt.tensor(f"{p}.gate_proj.weight"), self.ckpt.tensor(f"{p}.up_proj.weight")]
        )
        fused = self.linear(normed, f"{p}.gate_up_proj", gate_up, None)
        del gate_up
        gate, up = self.node("Split", [fused, self.split], outputs=2, axis=-1)
        (sig,) = self.node("Sigmoid", [gate])
        (silu,) = self.node("Mul", [gate, sig])
        (act,) = self.node("Mul", [silu, up])
        down = self.ckpt.tensor(f"{p}.down_proj.weight")
        return self.linear(act, f"{p}.down_proj", down, None)

    def _gather_rows(self, hidden: str) -> str:
        """Row ``logits_index[b]`` of each batch row: ``[batch, hidden]`` before the lm_head."""
        flat_shape = self.writer.add("rows.flat_shape", np.array([-1, self.cfg.hidden_size]))
        (flat,) = self.node("Reshape", [hidden, flat_shape])
        (seq,) = self.node("Shape", ["input_ids"], start=1, end=2)
        (batch,) = self.node("Shape", ["input_ids"], start=0, end=1)
        (batch_scalar,) = self.node("Squeeze", [batch])
        zero = self.writer.add("rows.zero", np.array(0, dtype=np.int64))
        one = self.writer.add("rows.one", np.array(1, dtype=np.int64))
        (starts,) = self.node("Range", [zero, batch_scalar, one])
        (offsets,) = self.node("Mul", [starts, seq])
        (rows,) = self.node("Add", [offsets, "logits_index"])
        (selected,) = self.node("Gather", [flat, rows], axis=0)
        return selected

    def _lm_head(self, selected: str, table: str) -> None:
        """Logits ``[batch, vocab]`` in float32 (tied models reuse the embedding table)."""
        tied = self.cfg.tie_word_embeddings
        name = "model.embed_tokens.weight" if tied else "lm_head.weight"
        if self.weight_bits is not None:
            head = self.ckpt.tensor(name)
            logits = self.linear(selected, "lm_head", head, None, bits=LM_HEAD_BITS)
        else:
            weight = table if tied else self.weight(name)
            (logits,) = self.node("Gemm", [selected, weight], transB=1)
        if self.precision == "fp16":
            (logits,) = self.node("Cast", [logits], to=TensorProto.FLOAT)
        self.nodes[-1].output[0] = "logits"

    # -- I/O -----------------------------------------------------------------------------------

    def inputs(self) -> list[onnx.ValueInfoProto]:
        c = self.cfg
        kv_shape: list[str | int] = ["batch", c.num_kv_heads, "max_sequence", c.head_dim]
        values = [
            _value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            _value_info("seqlens_k", TensorProto.INT32, ["batch"]),
            _value_info("total_sequence_length", TensorProto.INT32, []),
            _value_info("logits_index", TensorProto.INT64, ["batch"]),
        ]
        for i in range(c.num_layers):
            values += [_value_info(n, self.act_type, kv_shape) for n in past_names(i)]
        return values

    def outputs(self) -> list[onnx.ValueInfoProto]:
        c = self.cfg
        kv_shape: list[str | int] = ["batch", c.num_kv_heads, "present_sequence", c.head_dim]
        values = [_value_info("logits", TensorProto.FLOAT, ["batch", c.vocab_size])]
        for i in range(c.num_layers):
            values += [_value_info(n, self.act_type, kv_shape) for n in present_names(i)]
        if uses_gemm_attention(self.precision):
            shape: list[str | int] = ["batch", c.num_heads, "sequence", "total_sequence"]
            values += [
                _value_info(scores_name(i), TensorProto.FLOAT, shape) for i in range(c.num_layers)
            ]
        return values


def nbits_attributes(quant: QuantizedWeight) -> dict[str, Any]:
    """The attributes of a ``MatMulNBits`` node over ``quant``."""
    return {
        "K": quant.k,
        "N": quant.n,
        "bits": quant.bits,
        "block_size": INT4_BLOCK_SIZE,
        "accuracy_level": INT4_ACCURACY_LEVEL,
    }


def export_onnx(
    checkpoint: Checkpoint, out_dir: Path, precision: str, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Write ``out_dir/model.onnx`` (+ ``model.onnx.data``); return the graph facts for the card."""
    if precision not in PRECISIONS:
        raise BuildError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    writer = ExternalDataWriter(out_dir / DATA_FILE)
    try:
        graph = _DecoderGraph(checkpoint, writer, precision)
        graph.build(progress)
    finally:
        writer.close()
    model = helper.make_model(
        helper.make_graph(
            graph.nodes, "fncall_decoder", graph.inputs(), graph.outputs(), writer.initializers
        ),
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="fncall",
    )
    model.ir_version = 9
    model_path = out_dir / MODEL_FILE
    model_path.write_bytes(model.SerializeToString())
    seconds = time.monotonic() - started
    progress(f"wrote {model_path} and {writer.data_path.name} in {seconds:.1f}s")
    return _facts(checkpoint.config, precision, model_path, writer, seconds)


def _facts(
    cfg: ModelConfig, precision: str, model_path: Path, writer: ExternalDataWriter, seconds: float
) -> dict[str, Any]:
    """The JSON-able description of the graph stored in the model card's ``extra``."""
    kv_dtype = "float16" if precision == "fp16" else "float32"
    facts: dict[str, Any] = {
        "graph": "fncall-gqa-decoder/1",
        "precision": precision,
        "opset": OPSET,
        "inputs": {
            "input_ids": "int64 [batch, sequence]",
            "seqlens_k": "int32 [batch] (tokens in the cache after this step, minus 1)",
            "total_sequence_length": "int32 scalar (max over rows of seqlens_k + 1)",
            "logits_index": "int64 [batch] (position within this step whose logits to return)",
            "past_key_values.{i}.key|value": f"{kv_dtype} [batch, kv_heads, max_seq, head_dim]",
        },
        "outputs": {
            "logits": "float32 [batch, vocab]",
            "present.{i}.key|value": f"{kv_dtype} (bind to the same buffer as past: shared)",
            **(
                {
                    "attention_scores.{i}": "float32 [batch, heads, sequence, total] "
                    "(write-only scratch: bind every layer's to one buffer)"
                }
                if uses_gemm_attention(precision)
                else {}
            ),
        },
        "num_layers": cfg.num_layers,
        "num_kv_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "kv_dtype": kv_dtype,
        "rotary_max_positions": cfg.context_length,
        "fused_ops": [
            "SimplifiedLayerNormalization",
            "SkipSimplifiedLayerNormalization",
            "GroupQueryAttention(do_rotary, packed QKV)",
            "fused QKV and gate/up projections",
        ],
        "files": {MODEL_FILE: model_path.stat().st_size, DATA_FILE: writer.size},
        "export_seconds": round(seconds, 1),
    }
    if precision in WEIGHT_BITS:
        facts["quantization"] = {
            "op": "MatMulNBits",
            "bits": WEIGHT_BITS[precision],
            "block_size": INT4_BLOCK_SIZE,
            "symmetric": False,
            "accuracy_level": INT4_ACCURACY_LEVEL,
            "lm_head_bits": LM_HEAD_BITS,
            "embedding": "float16",
        }
    return facts
