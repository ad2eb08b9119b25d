"""``--precision auto``: int8 or int4 weights, whichever ONNX Runtime multiplies faster here.

Which MatMulNBits width is faster depends on the CPU's MLAS kernels: on a 2-core AMD EPYC the
int4 build of the default model decoded 1.28x faster than int8 at batch 1, on a 2-core Intel
Xeon 2.2x slower (README, Benchmarks). Both score alike on the tool-calling evaluation. So
``pick_precision`` times a stack of MatMulNBits shaped like the default model's MLPs (896 ->
4864 -> 896, ``LAYERS`` deep, random weights: more than a CPU cache holds, so weights stream
from memory as in decoding) at both widths, at batch 1 and 16, in interleaved rounds with the
decoder's settings (``accuracy_level`` 4, the physical cores as threads; the fastest of
``ROUNDS``), and picks int4 where it is clearly faster at batch 1 (``MARGIN``) and not clearly
slower at batch 16 (``SLACK``): int8 stays the choice when they are close, since it is the
more exact one (on that EPYC the probe gives int4 about 0.6x int8's time at batch 1 and the
same at batch 16, the whole model 1.28x and 1.09x the decode speed).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from service.modelbuild.onnx_export import MS_DOMAIN, OPSET, nbits_attributes
from service.modelbuild.onnx_weights import quantize_blockwise
from service.modelcard import Precision
from service.runtime.onnx_decoder import physical_cores

CHOICES: tuple[Precision, ...] = ("int8", "int4")
SHAPE = (896, 4864)  # hidden, intermediate: the default model's MLP
LAYERS = 12  # up and down projections each: 105 MB of int8 weights
BATCHES = (1, 16)
MARGIN = 0.9  # int4 must take at most this share of int8's time at batch 1
SLACK = 1.25  # and at most this share at batch 16 (the batch-16 timings vary more)
ROUNDS = 7
CALLS = 5  # passes through the stack timed per round and setting


def pick_precision(progress: Callable[[str], None]) -> Precision:
    """``int4`` where it is clearly faster than ``int8`` at batch 1 and not clearly slower at
    batch 16, else ``int8``; the timings go to ``progress``."""
    timings = measure()
    for batch in BATCHES:
        progress(
            f"precision auto: {2 * LAYERS} MatMulNBits ({SHAPE[0]}x{SHAPE[1]}) at batch {batch}: "
            f"int8 {timings[8, batch] * 1e3:.1f} ms, int4 {timings[4, batch] * 1e3:.1f} ms"
        )
    faster = timings[4, 1] <= MARGIN * timings[8, 1] and timings[4, 16] <= SLACK * timings[8, 16]
    choice: Precision = "int4" if faster else "int8"
    progress(f"precision auto: {choice}")
    return choice


def measure() -> dict[tuple[int, int], float]:
    """The fastest seconds of one pass through the stack per (bits, batch), rounds interleaved."""
    rng = np.random.default_rng(0)
    sessions = {bits: _session(bits, np.random.default_rng(1)) for bits in (8, 4)}
    inputs = {batch: rng.standard_normal((batch, SHAPE[0]), dtype=np.float32) for batch in BATCHES}
    samples: dict[tuple[int, int], list[float]] = {
        (bits, batch): [] for bits in sessions for batch in BATCHES
    }
    for (bits, batch), _ in samples.items():  # warm-up: first runs pack and allocate
        sessions[bits].run(None, {"x": inputs[batch]})
    for _ in range(ROUNDS):
        for (bits, batch), times in samples.items():
            started = time.perf_counter()
            for _ in range(CALLS):
                sessions[bits].run(None, {"x": inputs[batch]})
            times.append((time.perf_counter() - started) / CALLS)
    return {key: min(times) for key, times in samples.items()}


def _session(bits: int, rng: np.random.Generator) -> ort.InferenceSession:
    """``LAYERS`` up and down projections as MatMulNBits at ``bits``, random weights."""
    nodes, initializers = [], []
    hidden, intermediate = SHAPE
    x = "x"
    for layer in range(2 * LAYERS):
        k, n = (hidden, intermediate) if layer % 2 == 0 else (intermediate, hidden)
        quant = quantize_blockwise(rng.standard_normal((k, n), dtype=np.float32) * 0.02, bits)
        names = [f"{part}_{layer}" for part in ("qweight", "scales", "zero_points")]
        initializers += [
            numpy_helper.from_array(quant.packed, names[0]),
            numpy_helper.from_array(quant.scales, names[1]),
            numpy_helper.from_array(quant.zero_points, names[2]),
        ]
        out = "y" if layer == 2 * LAYERS - 1 else f"h_{layer}"
        nodes.append(
            helper.make_node(
                "MatMulNBits", [x, *names], [out], domain=MS_DOMAIN, **nbits_attributes(quant)
            )
        )
        x = out
    graph = helper.make_graph(
        nodes,
        "matmul_nbits_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)]
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = physical_cores()
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
