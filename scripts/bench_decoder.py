"""Benchmark the ONNX decoder: model x precision x batch -> prefill and decode tokens/s.

Exports each packaged model at each precision (into ``--work-dir``, reused when already there),
or takes the ``--built`` version directories of ``fncall build-model``, then runs
``OnnxDecoder`` side by side in one process (``--provider cuda``: on the GPU, KV cache on the
device) and prints a Markdown table: plain ONNX Runtime, no scheduler, no Triton.
Run: ``python scripts/bench_decoder.py --models smollm2-135m-instruct --precisions fp32,int4``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.modelbuild.checkpoint import load_checkpoint
from service.modelbuild.onnx_export import DATA_FILE, MODEL_FILE, export_onnx
from service.modelbuild.sources import default_cache_dir, resolve_source
from service.modelcard import ModelCard
from service.runtime.onnx_decoder import OnnxDecoder, physical_cores

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    """One measured configuration."""

    model: str
    precision: str
    batch: int
    prefill_tps: float
    decode_tps: float
    size_mb: float
    export_s: float | None


def build(model: str, precision: str, work_dir: Path) -> tuple[Path, float | None]:
    """``model.onnx`` for ``model`` at ``precision``; export seconds, None when reused."""
    out_dir = work_dir / f"{model}-{precision}"
    if (out_dir / MODEL_FILE).is_file():
        return out_dir / MODEL_FILE, None
    source = resolve_source(model, default_cache_dir(), logger.info)
    started = time.perf_counter()
    export_onnx(load_checkpoint(source.path), out_dir, precision, logger.info)
    return out_dir / MODEL_FILE, time.perf_counter() - started


def measure(decoder: OnnxDecoder, batch: int, prompt_len: int, steps: int) -> tuple[float, float]:
    """(prefill tokens/s, decode tokens/s) for ``batch`` sequences in slots ``0..batch-1``."""
    rng = np.random.default_rng(0)
    slots = list(range(batch))
    prompts = [rng.integers(100, 1000, prompt_len).tolist() for _ in slots]
    for slot in slots:
        decoder.reset(slot)
    started = time.perf_counter()
    logits = decoder.step(slots, prompts)
    prefill = batch * prompt_len / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(steps):
        logits = decoder.step(slots, [[int(t)] for t in logits.argmax(-1)])
    decode = batch * steps / (time.perf_counter() - started)
    return prefill, decode


def graphs(args: argparse.Namespace, work_dir: Path) -> list[tuple[str, str, Path, float | None]]:
    """(model, precision, model.onnx, export seconds) to measure: the ``--built`` directories,
    else every model at every precision, exported into ``work_dir``."""
    if args.built:
        made = []
        for version_dir in args.built:
            card = ModelCard.load(version_dir)
            made.append((card.name, card.precision, version_dir / card.onnx_file, None))
        return made
    return [
        (model, precision, *build(model, precision, work_dir))
        for model in args.models.split(",")
        for precision in args.precisions.split(",")
    ]


def run(args: argparse.Namespace, work_dir: Path) -> list[Row]:
    rows = []
    for model, precision, path, export_s in graphs(args, work_dir):
        size = sum(f.stat().st_size for f in (path, path.parent / DATA_FILE)) / 1e6
        batches = [int(b) for b in args.batches.split(",")]
        decoder = OnnxDecoder(
            path,
            num_slots=max(batches),
            max_seq_len=args.prompt_len + args.steps + 1,
            provider=args.provider,
            intra_op_threads=args.threads,
        )
        measure(decoder, 1, 8, 2)  # warm-up: first-run allocations and prepacking
        for batch in batches:
            prefill, decode = measure(decoder, batch, args.prompt_len, args.steps)
            rows.append(Row(model, precision, batch, prefill, decode, size, export_s))
            print(f"measured {rows[-1]}", file=sys.stderr, flush=True)
        del decoder
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| model | precision | batch | prefill tok/s | decode tok/s | files MB | export s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        export = f"{r.export_s:.1f}" if r.export_s is not None else "cached"
        lines.append(
            f"| {r.model} | {r.precision} | {r.batch} | {r.prefill_tps:.0f} | "
            f"{r.decode_tps:.1f} | {r.size_mb:.0f} | {export} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--precisions", default="fp32,int4")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="default: physical cores")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary dir")
    parser.add_argument(
        "--built",
        type=Path,
        action="append",
        help="a built model's version directory (repeatable; replaces --models/--precisions)",
    )
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.work_dir is not None:
        rows = run(args, args.work_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            rows = run(args, Path(tmp))
    threads = args.threads or physical_cores()
    print(f"ONNX Runtime, {args.provider} provider, {threads} threads, prompt {args.prompt_len}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
