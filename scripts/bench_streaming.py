"""Streamed against non-streamed chat completions, side by side, through the REST API.

Starts ``fncall serve`` on the built default model (16 active sequences) and sends the same
prompts (no tools, greedy, up to ``--max-tokens`` tokens) with the ``openai`` SDK, streamed and
not, in interleaved rounds at each concurrency. Prints one Markdown table: time to the first
content chunk (streamed), request latency, aggregate completion tokens/s; and the CPU and load.

Run: ``python scripts/bench_streaming.py`` (``--rounds``, ``--max-tokens``, ``--concurrency``)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench_fncall import cpu_model, find_model
from scripts.bench_triton import QUESTIONS
from service.model_repository import stage_model
from tests.integration.serving import ServiceProcess, running_service

MODEL = "qwen2.5-coder-0.5b-instruct"


@dataclass(frozen=True)
class Sample:
    first_content_s: float | None  # streamed only
    latency_s: float
    tokens: int


@dataclass(frozen=True)
class Run:
    mode: str
    concurrency: int
    samples: list[Sample]
    wall_s: float

    @property
    def tokens_per_s(self) -> float:
        return sum(s.tokens for s in self.samples) / self.wall_s


async def _one(client: openai.AsyncOpenAI, question: str, stream: bool, max_tokens: int) -> Sample:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "temperature": 0.0,
        "max_tokens": max_tokens,
    }
    started = time.perf_counter()
    if not stream:
        completion = await client.chat.completions.create(**body)  # type: ignore[call-overload]
        assert completion.usage is not None
        return Sample(None, time.perf_counter() - started, completion.usage.completion_tokens)
    first, tokens = None, 0
    chunks = await client.chat.completions.create(  # type: ignore[call-overload]
        **body, stream=True, stream_options={"include_usage": True}
    )
    async for chunk in chunks:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return Sample(first, time.perf_counter() - started, tokens)


async def _run(
    client: openai.AsyncOpenAI, stream: bool, concurrency: int, requests: int, max_tokens: int
) -> Run:
    queue = [QUESTIONS[i % len(QUESTIONS)] for i in range(requests)]
    samples: list[Sample] = []

    async def worker() -> None:
        while queue:
            samples.append(await _one(client, queue.pop(), stream, max_tokens))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    mode = "streamed (SSE)" if stream else "non-streamed"
    return Run(mode, concurrency, samples, time.perf_counter() - started)


def _p50_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f}" if values else "-"


def _table(runs: list[list[Run]]) -> str:
    lines = [
        "| mode | concurrency | requests | first content p50 ms | latency p50 ms "
        "| aggregate tok/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for rounds in runs:
        best = sorted(rounds, key=lambda r: r.tokens_per_s)[len(rounds) // 2]  # median round
        samples = [s for r in rounds for s in r.samples]
        first = [s.first_content_s for s in samples if s.first_content_s is not None]
        lines.append(
            f"| {best.mode} | {best.concurrency} | {len(best.samples)} | {_p50_ms(first)} | "
            f"{_p50_ms([s.latency_s for s in samples])} | {best.tokens_per_s:.1f} |"
        )
    return "\n".join(lines)


@contextmanager
def fncall_service(parameters: dict[str, Any]) -> Iterator[ServiceProcess]:
    """``fncall serve`` on free ports over the built default model, staged into a temp dir as
    Triton model ``llm`` with the given ``config.pbtxt`` parameters; stopped on exit."""
    with tempfile.TemporaryDirectory() as workdir:
        repository = Path(workdir) / "repository"
        stage_model(find_model(MODEL), repository, "llm", parameters)
        with running_service(repository, ["llm"], Path(workdir)) as service:
            yield service


async def _bench(url: str, args: argparse.Namespace) -> list[list[Run]]:
    results: dict[tuple[bool, int], list[Run]] = {}
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0) as client:
        await _one(client, "Hi", stream=True, max_tokens=4)  # warm up
        for _ in range(args.rounds):
            for concurrency in args.concurrency:
                requests = max(8, 2 * concurrency)
                for stream in (False, True):  # interleaved: same conditions for both
                    run = await _run(client, stream, concurrency, requests, args.max_tokens)
                    results.setdefault((stream, concurrency), []).append(run)
                    print(f"{run.mode} c={concurrency}: {run.tokens_per_s:.1f} tok/s", flush=True)
    return [results[(s, c)] for c in args.concurrency for s in (False, True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    with fncall_service({"max_active_sequences": 16}) as service:
        runs = asyncio.run(_bench(service.url, args))
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; load average {os.getloadavg()}")
    print(f"{MODEL} (int8), greedy, up to {args.max_tokens} tokens, median of {args.rounds} rounds")
    print(_table(runs))


if __name__ == "__main__":
    main()
