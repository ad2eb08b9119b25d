"""CPU decode settings side by side: MatMulNBits ``accuracy_level`` x ONNX Runtime threads.

For one built model: variants of its graph that differ only in ``accuracy_level`` (1: float32
compute, 4: int8 compute with dynamically quantized activations; the weights are the same files,
linked) run ``OnnxDecoder`` decode steps at batch 1 and batch 16 over a 256-token context, in
interleaved rounds (median reported), so every variant sees the same machine load. Each variant's
greedy tokens on a few prompts are compared with the first variant's (correctness), and
``--profile`` adds ONNX Runtime's per-operator time shares of one decode step of the first
variant. Prints the CPU model, its SIMD flags and the load average with the table.

Run: ``python scripts/bench_cpu.py --model qwen2.5-coder-0.5b-instruct``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.modelcard import ModelCard
from service.runtime.onnx_decoder import OnnxDecoder

REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"
CONTEXT = 256
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def find_model(card_name: str) -> Path:
    for card in sorted(REPOSITORY.glob("*/1/model_card.json")):
        if json.loads(card.read_text(encoding="utf-8")).get("name") == card_name:
            return card.parent
    raise SystemExit(f"{card_name} is not built: run `fncall build-model` first")


def variant_graph(artifacts: Path, accuracy_level: int, out_dir: Path) -> Path:
    """``model.onnx`` with every MatMulNBits at ``accuracy_level``, its weights hard-linked."""
    card = ModelCard.load(artifacts)
    model = onnx.load(str(artifacts / card.onnx_file), load_external_data=False)
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            for attribute in node.attribute:
                if attribute.name == "accuracy_level":
                    attribute.i = accuracy_level
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / card.onnx_file
    onnx.save(model, str(path))
    for data in artifacts.glob(card.onnx_file + ".data"):
        try:  # ORT refuses external data behind a symlink out of the model's folder
            os.link(data.resolve(), out_dir / data.name)
        except OSError:
            shutil.copyfile(data, out_dir / data.name)
    return path


def decode_ms(decoder: OnnxDecoder, batch: int, steps: int) -> float:
    """Median milliseconds of one decode step of ``batch`` rows at ``CONTEXT`` tokens."""
    rng = np.random.default_rng(0)
    slots = list(range(batch))
    for slot in slots:
        decoder.reset(slot)
    decoder.step(slots, [rng.integers(100, 1000, CONTEXT).tolist() for _ in slots])
    times = []
    for _ in range(steps):
        tokens = [[int(t)] for t in rng.integers(100, 1000, batch)]
        started = time.perf_counter()
        decoder.step(slots, tokens)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def greedy(decoder: OnnxDecoder, prompts: list[list[int]], steps: int) -> list[list[int]]:
    out = []
    for prompt in prompts:
        decoder.reset(0)
        logits = decoder.step([0], [prompt])
        tokens: list[int] = []
        for _ in range(steps):
            tokens.append(int(logits[0].argmax()))
            logits = decoder.step([0], [[tokens[-1]]])
        out.append(tokens)
    return out


def profile_shares(model_path: Path, threads: int, batch: int) -> dict[str, float]:
    """Per-operator-type share of the node time of a few decode steps (ORT profiler)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        feeds = _decode_feeds(session, batch)
        for _ in range(6):
            session.run(["logits"], feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        args = event.get("args", {})
        if event.get("cat") == "Node" and "op_name" in args:
            totals[args["op_name"]] += event.get("dur", 0)
    whole = sum(totals.values()) or 1.0
    return {op: t / whole for op, t in sorted(totals.items(), key=lambda kv: -kv[1])}


def _decode_feeds(session: ort.InferenceSession, batch: int) -> dict[str, np.ndarray]:
    """Inputs of one decode step at ``CONTEXT`` tokens of past (zeros), as separate buffers."""
    feeds: dict[str, np.ndarray] = {}
    for meta in session.get_inputs():
        if meta.name.startswith("past_key_values."):
            heads, dim = int(meta.shape[1]), int(meta.shape[3])
            dtype = np.float16 if "16" in meta.type else np.float32
            feeds[meta.name] = np.zeros((batch, heads, CONTEXT + 1, dim), dtype=dtype)
    feeds["input_ids"] = np.full((batch, 1), 100, dtype=np.int64)
    feeds["seqlens_k"] = np.full(batch, CONTEXT, dtype=np.int32)
    feeds["total_sequence_length"] = np.array(CONTEXT + 1, dtype=np.int32)
    feeds["logits_index"] = np.zeros(batch, dtype=np.int64)
    return feeds


def cpu_description() -> str:
    model, flags = "unknown CPU", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("model name") and model == "unknown CPU":
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    have = [flag for flag in FLAGS if flag in flags]
    return f"{model} ({', '.join(have) or 'no AVX2'}), {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="qwen2.5-coder-0.5b-instruct", help="card name of a built model"
    )
    parser.add_argument(
        "--accuracy-levels", default="4,1", help="MatMulNBits accuracy_level variants"
    )
    parser.add_argument("--threads", default="2,1", help="ORT intra-op thread counts")
    parser.add_argument("--batches", default="1,16", help="decode batch sizes")
    parser.add_argument("--steps", type=int, default=12, help="decode steps timed per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument(
        "--profile", action="store_true", help="ORT per-operator time shares of a decode step"
    )
    args = parser.parse_args()
    artifacts = find_model(args.model)
    levels = [int(x) for x in args.accuracy_levels.split(",")]
    thread_counts = [int(x) for x in args.threads.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {
            level: variant_graph(artifacts, level, Path(tmp) / str(level)) for level in levels
        }
        decoders = {
            (level, threads): OnnxDecoder(
                graphs[level], max(batches), CONTEXT + 64, intra_op_threads=threads
            )
            for level in levels
            for threads in thread_counts
        }
        card = ModelCard.load(artifacts)
        prompts = [[card.bos_token_id or 1, *range(300 + 40 * i, 340 + 40 * i)] for i in range(3)]
        answers = {key: greedy(decoder, prompts, 24) for key, decoder in decoders.items()}
        times: dict[tuple[int, int, int], list[float]] = defaultdict(list)
        for _ in range(args.rounds):
            for batch in batches:
                for key, decoder in decoders.items():
                    times[(*key, batch)].append(decode_ms(decoder, batch, args.steps))
        shares = {}
        if args.profile:
            for batch in batches:
                shares[batch] = profile_shares(graphs[levels[0]], thread_counts[0], batch)
    load_after = os.getloadavg()
    first = next(iter(answers.values()))
    print(
        f"\n{args.model} ({card.precision}) on {cpu_description()}; ONNX Runtime "
        f"{ort.__version__}; decode at {CONTEXT} tokens of context, median of {args.rounds} "
        f"interleaved rounds x {args.steps} steps; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after"
    )
    print(
        "| accuracy_level | threads | " + " | ".join(f"batch {b} ms/step" for b in batches), end=""
    )
    print(" | " + " | ".join(f"batch {b} tok/s" for b in batches) + " | greedy = first row |")
    print("|---|---|" + "---|" * (2 * len(batches) + 1))
    for key in decoders:
        ms = [statistics.median(times[(*key, b)]) for b in batches]
        same = sum(a == b for a, b in zip(answers[key], first, strict=True))
        rates = [f"{1000 * b / m:.1f}" for b, m in zip(batches, ms, strict=True)]
        cells = [f"{m:.1f}" for m in ms] + rates
        print(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + f" | {same}/{len(first)} |")
    for batch, ops in shares.items():
        top = ", ".join(f"{op} {100 * share:.0f} %" for op, share in list(ops.items())[:5])
        print(f"\nprofile, accuracy_level {levels[0]}, batch {batch}: {top}")


if __name__ == "__main__":
    main()
