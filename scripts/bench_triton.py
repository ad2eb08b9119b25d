"""Benchmark the Triton ``llm`` model against a plain ONNX Runtime decode loop, side by side.

Same built model, same prompts, greedy answers of up to ``--max-tokens`` tokens (eos ends them
early, identically in both). The plain loop runs ``OnnxDecoder`` at batch 1 in this process;
the Triton runs go through ``TritonEngine`` (gRPC streaming) at each concurrency. Prints one
Markdown table: time to first token, per-request decode tokens/s, aggregate tokens/s.

Run: ``python scripts/bench_triton.py --model smollm2-135m-instruct``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.engine import TritonEngine
from service.generation import SamplingParams
from service.launcher import TritonLauncher
from service.model_repository import stage_model
from service.modelcard import ModelCard
from service.runtime.onnx_decoder import OnnxDecoder, physical_cores

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"
QUESTIONS = [
    "What is the capital of France?",
    "Write a Python function that reverses a string.",
    "Explain what a hash map is in two sentences.",
    "List three prime numbers greater than 100.",
    "How do I read a JSON file in Python?",
    "What does HTTP status 404 mean?",
    "Give me a haiku about the sea.",
    "Summarize the plot of Romeo and Juliet.",
]


@dataclass(frozen=True)
class Sample:
    """One answered request."""

    ttft_s: float  # submit -> first token
    tokens: int
    total_s: float  # submit -> last token

    @property
    def decode_tps(self) -> float:
        """Tokens after the first per second of streaming them."""
        span = self.total_s - self.ttft_s
        return (self.tokens - 1) / span if self.tokens > 1 and span > 0 else 0.0


@dataclass(frozen=True)
class Row:
    """One measured configuration."""

    mode: str
    concurrency: int
    samples: list[Sample]
    wall_s: float

    def cells(self) -> list[str]:
        tokens = sum(s.tokens for s in self.samples)
        return [
            self.mode,
            str(self.concurrency),
            str(len(self.samples)),
            str(tokens),
            f"{1000 * statistics.median(s.ttft_s for s in self.samples):.0f}",
            f"{statistics.mean(s.decode_tps for s in self.samples):.1f}",
            f"{tokens / self.wall_s:.1f}",
        ]


def find_model(card_name: str) -> Path:
    """The version directory of ``card_name`` built into the in-tree repository."""
    for card in sorted(REPOSITORY.glob("*/1/model_card.json")):
        if json.loads(card.read_text(encoding="utf-8")).get("name") == card_name:
            return card.parent
    raise SystemExit(f"{card_name} is not built: run `fncall build-model {card_name} ...` first")


def prompts(artifacts: Path) -> list[list[int]]:
    """ChatML prompts (both packaged models use it) tokenized with the model's tokenizer."""
    tokenizer = Tokenizer.from_file(str(artifacts / "tokenizer.json"))
    texts = [f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n" for q in QUESTIONS]
    return [tokenizer.encode(text, add_special_tokens=False).ids for text in texts]


def plain_loop(
    decoder: OnnxDecoder, stop: set[int], batch: list[list[int]], max_tokens: int
) -> tuple[Row, list[list[int]]]:
    """Batch-1 greedy decoding straight on ``OnnxDecoder``, one prompt after another."""
    samples, answers = [], []
    _greedy(decoder, batch[0], 4, stop)  # warm-up
    started = time.perf_counter()
    for prompt in batch:
        begin = time.perf_counter()
        decoder.reset(0)
        tokens, first = _greedy(decoder, prompt, max_tokens, stop)
        samples.append(Sample(first - begin, len(tokens), time.perf_counter() - begin))
        answers.append(tokens)
    return Row("plain ORT loop", 1, samples, time.perf_counter() - started), answers


def _greedy(
    decoder: OnnxDecoder, prompt: list[int], max_tokens: int, stop: set[int]
) -> tuple[list[int], float]:
    """Greedy tokens (eos excluded) and when the first one was ready."""
    decoder.reset(0)
    logits = decoder.step([0], [prompt])
    first = time.perf_counter()
    tokens: list[int] = []
    for _ in range(max_tokens):
        token = int(np.argmax(logits[0]))
        tokens.append(token)
        if token in stop or len(tokens) == max_tokens:
            break
        logits = decoder.step([0], [[token]])
    if tokens and tokens[-1] in stop:
        tokens.pop()
    return tokens, first


async def triton_run(
    engine: TritonEngine, model: str, batch: list[list[int]], concurrency: int, max_tokens: int
) -> tuple[Row, list[list[int]]]:
    """``concurrency`` workers each answering the prompts in turn (rotated per worker)."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    requests = max(len(batch), concurrency * 2)
    jobs: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        jobs.put_nowait(index)
    results: dict[int, tuple[Sample, list[int]]] = {}

    async def worker() -> None:
        while not jobs.empty():
            index = jobs.get_nowait()
            begin = time.perf_counter()
            first = 0.0
            tokens: list[int] = []
            async for chunk in engine.generate(model, batch[index % len(batch)], params):
                if chunk.token_ids and not tokens:
                    first = time.perf_counter()
                tokens += chunk.token_ids
            end = time.perf_counter()
            results[index] = (Sample(first - begin, len(tokens), end - begin), tokens)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    ordered = [results[i] for i in range(requests)]
    row = Row("Triton llm", concurrency, [s for s, _ in ordered], wall)
    return row, [tokens for _, tokens in ordered[: len(batch)]]


async def triton_rows(
    url: str, batch: list[list[int]], levels: list[int], max_tokens: int
) -> tuple[list[Row], list[list[int]]]:
    engine = TritonEngine(url)
    try:
        await triton_run(engine, "bench", batch[:2], 2, 4)  # warm-up
        rows: list[Row] = []
        answers: list[list[int]] = []
        for level in levels:
            row, answers = await triton_run(engine, "bench", batch, level, max_tokens)
            rows.append(row)
        return rows, answers
    finally:
        await engine.close()


def median_row(rows: list[Row]) -> Row:
    """The round with the median aggregate throughput (the machine may be shared: noisy)."""
    ranked = sorted(rows, key=lambda row: sum(s.tokens for s in row.samples) / row.wall_s)
    return ranked[len(ranked) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="card name of a build")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: cores)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    threads = args.threads or physical_cores()
    levels = [int(c) for c in args.concurrency.split(",")]
    artifacts = find_model(args.model)
    card = ModelCard.load(artifacts)
    batch = prompts(artifacts)

    decoder = OnnxDecoder(artifacts / card.onnx_file, 1, 1024, intra_op_threads=threads)
    stop = set(card.stop_token_ids)
    rounds: list[list[Row]] = []
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        parameters = {
            "max_active_sequences": max(levels),
            "max_seq_len": 1024,
            "intra_op_threads": threads,
        }
        stage_model(artifacts, Path(tmp), "bench", parameters)
        with TritonLauncher(Path(tmp), ["bench"]) as launcher:
            for _ in range(args.rounds):  # interleaved, so both modes see the same noise
                plain, plain_answers = plain_loop(decoder, stop, batch, args.max_tokens)
                rows, answers = asyncio.run(
                    triton_rows(launcher.grpc_url, batch, levels, args.max_tokens)
                )
                rounds.append([plain, *rows])
                same = same and answers == plain_answers

    header = ["mode", "concurrency", "requests", "tokens", "TTFT p50 ms", "tok/s per request"]
    header.append("aggregate tok/s")
    print(
        f"\n{args.model} ({card.precision}), {threads} ORT threads, greedy <= {args.max_tokens}, "
        f"median of {args.rounds} interleaved rounds"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for column in zip(*rounds, strict=True):
        print("| " + " | ".join(median_row(list(column)).cells()) + " |")
    print(f"\nTriton answers identical to the plain loop: {same}")


if __name__ == "__main__":
    main()
