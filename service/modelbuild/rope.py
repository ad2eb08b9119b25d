"""RoPE frequency scaling as per-pair divisors of the base inverse frequencies.

Supported: plain RoPE, ``linear`` (every frequency divided by ``factor``) and ``llama3``
(low frequencies divided by ``factor``, high ones kept, a smooth blend between), computed as
transformers does; llama.cpp stores the same divisors in a GGUF's ``rope_freqs.weight``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from service.modelbuild.errors import BuildError


def base_inv_freq(head_dim: int, theta: float) -> np.ndarray:
    """``1 / theta^(2i / head_dim)`` per rotary pair, in float32 as transformers computes it."""
    exponent = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32)
    return 1.0 / (np.float32(theta) ** (exponent / np.float32(head_dim)))


def _llama3_divisors(inv_freq: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    factor = float(params["factor"])
    low, high = float(params["low_freq_factor"]), float(params["high_freq_factor"])
    old_context = float(params["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv_freq.astype(np.float64)
    smooth = (old_context / wavelen - low) / (high - low)
    blended = 1.0 / ((1 - smooth) / factor + smooth)
    divisors = np.where(wavelen > old_context / low, factor, blended)
    return np.where(wavelen < old_context / high, 1.0, divisors)


def hf_rope(raw: dict[str, Any], head_dim: int) -> tuple[float, tuple[float, ...] | None]:
    """(theta, divisors) from a ``config.json`` (``rope_scaling`` or transformers 5's
    ``rope_parameters``)."""
    params = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    theta = float(params.get("rope_theta", raw.get("rope_theta", 10000.0)))
    rope_type = params.get("rope_type", params.get("type", "default"))
    try:
        if rope_type == "default":
            return theta, None
        if rope_type == "linear":
            return theta, (float(params["factor"]),) * (head_dim // 2)
        if rope_type == "llama3":
            divisors = _llama3_divisors(base_inv_freq(head_dim, theta), params)
            return theta, tuple(float(d) for d in divisors)
    except KeyError as error:
        raise BuildError(f"rope scaling {rope_type!r} lacks {error.args[0]}") from None
    raise BuildError(
        f"unsupported rope scaling {rope_type!r}: supported are default, linear and llama3"
    )
