"""Benchmark the Triton ``llm`` model against a plain ONNX Runtime decode loop, side by side.

Same built model, same prompts, greedy answers of up to ``--max-tokens`` tokens (eos ends them
early, identically in both). The plain loop runs ``OnnxDecoder`` at batch 1 in this process;
the Triton runs go through ``TritonEngine`` (gRPC streaming) at each concurrency. Prints one
Markdown table: time to first token, per-request decode tokens/s, aggregate tokens/s.

Workloads: ``chat`` (8 short questions, answers <= 64 tokens), ``tools`` (the model's chat
template with 4 tools and a system prompt, ~500 prompt tokens; the answers are tool calls) and
``essay`` (short prompts, answers <= 256 tokens). ``--device gpu`` runs both modes on ONNX
Runtime's CUDA provider (Triton: a ``KIND_GPU`` instance) and prints the GPU memory in use.

Run: ``python scripts/bench_triton.py --model smollm2-135m-instruct [--workload tools]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench_grammar import QUESTIONS as TOOL_QUESTIONS
from scripts.bench_grammar import TOOLSETS
from service.engine import TritonEngine
from service.generation import SamplingParams
from service.launcher import TritonLauncher
from service.model_repository import stage_model
from service.modelcard import ModelCard
from service.models import ServedModel
from service.prompting.chat_prompt import build_prompt
from service.protocol import parse_request
from service.runtime.onnx_decoder import OnnxDecoder, physical_cores

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"
WORKLOADS = {"chat": 64, "tools": 64, "essay": 256}  # name -> default --max-tokens
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
ESSAYS = [
    "Write an essay about the history of the printing press.",
    "Write an essay on why cities should plant more trees.",
    "Write an essay about how a compiler turns source code into machine code.",
    "Write an essay on the causes of the French Revolution.",
    "Write an essay about the life cycle of stars.",
    "Write an essay on the pros and cons of remote work.",
    "Write an essay about the invention of the telephone.",
    "Write an essay on how vaccines train the immune system.",
]
TOOL_SYSTEM = (
    "You are the assistant of a travel and events company. Use the tools to act for the user: "
    "look up the weather before suggesting outdoor plans, book flights only when the origin, "
    "destination and number of passengers are known, put meetings in the calendar with a clear "
    "title, and search the shop when the user wants to buy something."
)


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


def find_model(card_name: str, repository: Path = REPOSITORY) -> Path:
    """The version directory of ``card_name`` built into ``repository``."""
    for card in sorted(repository.glob("*/1/model_card.json")):
        if json.loads(card.read_text(encoding="utf-8")).get("name") == card_name:
            return card.parent
    raise SystemExit(f"{card_name} is not built: run `fncall build-model {card_name} ...` first")


def prompts(artifacts: Path, workload: str = "chat") -> list[list[int]]:
    """The workload's prompts tokenized for the model (chat, essay: ChatML, which both packaged
    models use; tools: the model's own chat template, as the service renders a request)."""
    if workload == "tools":
        return tool_prompts(artifacts)
    tokenizer = Tokenizer.from_file(str(artifacts / "tokenizer.json"))
    questions = ESSAYS if workload == "essay" else QUESTIONS
    texts = [f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n" for q in questions]
    return [tokenizer.encode(text, add_special_tokens=False).ids for text in texts]


def tool_prompts(artifacts: Path) -> list[list[int]]:
    """Tool requests (``tool_choice`` auto over bench_grammar's 4 tools) as the service renders
    them, one per question of bench_grammar, twice over."""
    model = ServedModel.load(artifacts, "bench")
    made = []
    for question in TOOL_QUESTIONS * 2:
        messages = [{"role": "system", "content": TOOL_SYSTEM}]
        messages.append({"role": "user", "content": question})
        body: dict[str, Any] = {"model": model.id, "messages": messages}
        request = parse_request({**body, "tools": TOOLSETS["4 tools"], "tool_choice": "auto"})
        made.append(build_prompt(model, request).ids)
    return made


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


def gpu_memory_mib() -> int | None:
    """MiB in use on GPU 0 (``nvidia-smi``), None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    query = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"]
    result = subprocess.run(query, capture_output=True, text=True, check=False, timeout=30)
    return int(result.stdout.split()[0]) if result.returncode == 0 and result.stdout else None


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
    parser.add_argument("--repository", type=Path, default=REPOSITORY, help="where it is built")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="chat")
    parser.add_argument("--max-tokens", type=int, help="default: 64 (chat, tools), 256 (essay)")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: cores)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--max-seq-len", type=int, default=1024, help="KV tokens per slot")
    parser.add_argument("--prompts", type=int, default=8, help="how many of the 8 prompts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    threads = args.threads or physical_cores()
    max_tokens = args.max_tokens or WORKLOADS[args.workload]
    levels = [int(c) for c in args.concurrency.split(",")]
    artifacts = find_model(args.model, args.repository)
    card = ModelCard.load(artifacts)
    batch = prompts(artifacts, args.workload)[: args.prompts]
    provider = "cuda" if args.device == "gpu" else "cpu"

    memory = {"idle": gpu_memory_mib()}
    decoder = OnnxDecoder(
        artifacts / card.onnx_file, 1, args.max_seq_len, provider=provider, intra_op_threads=threads
    )
    stop = set(card.stop_token_ids)
    rounds: list[list[Row]] = []
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        parameters = {
            "max_active_sequences": max(levels),
            "max_seq_len": args.max_seq_len,
            "max_queue": max(64, max(levels)),
            "intra_op_threads": threads,
            "execution_provider": provider,
        }
        kind = "KIND_GPU" if args.device == "gpu" else None
        stage_model(artifacts, Path(tmp), "bench", parameters, kind=kind)
        with TritonLauncher(Path(tmp), ["bench"]) as launcher:
            for round_ in range(args.rounds):  # interleaved: both modes see the same noise
                plain, plain_answers = plain_loop(decoder, stop, batch, max_tokens)
                rows, answers = asyncio.run(
                    triton_rows(launcher.grpc_url, batch, levels, max_tokens)
                )
                rounds.append([plain, *rows])
                same = same and answers == plain_answers
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
            memory["loaded"] = gpu_memory_mib()

    header = ["mode", "concurrency", "requests", "tokens", "TTFT p50 ms", "tok/s per request"]
    header.append("aggregate tok/s")
    prompt_tokens = statistics.mean(len(p) for p in batch)
    print(
        f"\n{args.model} ({card.precision}) on {args.device} ({provider} provider, {threads} ORT "
        f"threads), workload {args.workload}: {len(batch)} prompts of {prompt_tokens:.0f} tokens "
        f"on average, greedy <= {max_tokens}, median of {args.rounds} interleaved rounds"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for column in zip(*rounds, strict=True):
        print("| " + " | ".join(median_row(list(column)).cells()) + " |")
    print(f"\nTriton answers identical to the plain loop: {same}")
    if memory["idle"] is not None and memory["loaded"] is not None:
        print(
            f"GPU 0 memory used: {memory['idle']} MiB before, {memory['loaded']} MiB with the "
            f"plain decoder (1 slot) and Triton ({max(levels)} slots x {args.max_seq_len}) loaded"
        )


if __name__ == "__main__":
    main()
