"""Function-calling benchmark: the same tool set on every request, prefix cache on vs off.

One embedded Triton serves each built model (``--model``, repeatable: e.g. an int8 and an int4
build side by side) twice, with ``prefix_cache`` 1 and 0; the chat pipeline (``ChatService``:
template, tokenizer, grammar, tool-call parser) runs in this process over ``TritonEngine``, so
each request takes the user's path minus HTTP. Every request sends the same 4 tools and one of
8 questions (``tool_choice`` auto, temperature 0). Rounds interleave the modes at each
concurrency (c=1: the 8 questions one after another; c=16: 16 requests at once), so all see
the same load. Prints a Markdown table: p50/p95 latency, time to first token, requests/s,
decode tok/s, prefix-cache hit rate (prompt tokens served from the cache), and how many answers
were the expected call; with the CPU model and load average.

Run: ``python scripts/bench_fncall.py [--model qwen2.5-coder-0.5b-instruct ...] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.chat import ChatService
from service.engine import TritonEngine
from service.generation import GenerationChunk, SamplingParams
from service.launcher import TritonLauncher
from service.model_repository import stage_model
from service.models import ModelRegistry, ServedModel
from service.runtime.onnx_decoder import physical_cores

REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"


@dataclass(frozen=True)
class Mode:
    """One served configuration: a built model with the prefix cache on or off."""

    name: str  # the Triton model (and the ChatService model id)
    artifacts: Path  # the built model's version directory
    model: str  # card name and precision, for the table
    prefix_cache: int


def modes_of(artifacts: Sequence[Path]) -> list[Mode]:
    """Each built model with the cache on, then off."""
    modes = []
    for i, path in enumerate(artifacts):
        card = json.loads((path / "model_card.json").read_text(encoding="utf-8"))
        label = f"{card['name']} ({card['precision']})"
        modes += [Mode(f"m{i}_cache", path, label, 1), Mode(f"m{i}_nocache", path, label, 0)]
    return modes


def _tool(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
            },
        },
    }


_STRING = {"type": "string"}
TOOLS = [
    _tool(
        "get_current_weather",
        "Get the current weather in a given location",
        {"location": {"type": "string", "description": "The city and state, e.g. Paris, France"}},
    ),
    _tool(
        "get_local_time",
        "Get the current local time in a city",
        {"city": {"type": "string", "description": "The city name, e.g. Tokyo"}},
    ),
    _tool(
        "convert_currency",
        "Convert an amount of money from one currency to another",
        {
            "amount": {"type": "number", "description": "The amount to convert"},
            "from_currency": {"type": "string", "description": "ISO code, e.g. USD"},
            "to_currency": {"type": "string", "description": "ISO code, e.g. EUR"},
        },
    ),
    _tool(
        "search_flights",
        "Search flights between two cities on a date",
        {
            "origin": {"type": "string", "description": "Departure city"},
            "destination": {"type": "string", "description": "Arrival city"},
            "date": {"type": "string", "description": "Date as YYYY-MM-DD"},
        },
    ),
]
SYSTEM = "You are a travel assistant. Use the tools when they help answer the user."
# (question, expected function, argument that must mention the value)
QUESTIONS = [
    ("What is the weather like in Paris right now?", "get_current_weather", ("location", "paris")),
    ("What time is it in Tokyo?", "get_local_time", ("city", "tokyo")),
    ("Convert 250 US dollars to euros.", "convert_currency", ("to_currency", "eur")),
    ("Find me a flight from Berlin to Rome on 2025-03-14.", "search_flights", ("origin", "berlin")),
    ("Is it raining in Seattle today?", "get_current_weather", ("location", "seattle")),
    ("What's the local time in Sydney?", "get_local_time", ("city", "sydney")),
    ("How many Japanese yen is 100 GBP?", "convert_currency", ("from_currency", "gbp")),
    ("Flights Madrid to Lisbon on 2025-06-01?", "search_flights", ("destination", "lisbon")),
]

_timings: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("timings")


class TimedEngine:
    """An engine that notes, for the request of the current task, when its first token and its
    last chunk arrived (the service may stop reading before the final one: a dropped call)."""

    def __init__(self, engine: TritonEngine) -> None:
        self._engine = engine

    async def generate(
        self, model: str, prompt_ids: Sequence[int], params: SamplingParams
    ) -> AsyncIterator[GenerationChunk]:
        timings = _timings.get(None)
        async for chunk in self._engine.generate(model, prompt_ids, params):
            if timings is not None and (chunk.token_ids or chunk.finish_reason):
                timings.append(time.perf_counter())
            yield chunk

    async def is_ready(self, model: str) -> bool:
        return await self._engine.is_ready(model)


@dataclass(frozen=True)
class Sample:
    """One answered request."""

    latency_s: float
    ttft_s: float
    decode_s: float  # first token -> last chunk read
    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int
    correct: bool
    answer: str  # the calls (or the text) returned, for the wrong ones


@dataclass
class Cell:
    """One (mode, concurrency) configuration over all rounds."""

    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0

    def cells(self) -> list[str]:
        s = self.samples
        latencies = sorted(x.latency_s for x in s)
        p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
        decode = [
            (x.completion_tokens - 1) / x.decode_s
            for x in s
            if x.completion_tokens > 1 and x.decode_s > 0
        ]
        hit = sum(x.cached_tokens for x in s) / max(1, sum(x.prompt_tokens for x in s))
        return [
            f"{statistics.median(latencies):.2f}",
            f"{p95:.2f}",
            f"{1000 * statistics.median(x.ttft_s for x in s):.0f}",
            f"{len(s) / self.wall_s:.2f}",
            f"{statistics.mean(decode):.1f}" if decode else "-",
            f"{100 * hit:.0f} %",
            f"{sum(x.correct for x in s)}/{len(s)}",
        ]


def is_correct(response: dict[str, Any], name: str, argument: tuple[str, str]) -> bool:
    """One call of the expected function whose argument mentions the expected value."""
    calls = response["choices"][0]["message"].get("tool_calls") or []
    if len(calls) != 1 or calls[0]["function"]["name"] != name:
        return False
    arguments = json.loads(calls[0]["function"]["arguments"])
    key, value = argument
    return value in str(arguments.get(key, "")).lower()


async def one_request(service: ChatService, model_id: str, index: int, max_tokens: int) -> Sample:
    question, name, argument = QUESTIONS[index % len(QUESTIONS)]
    body = {
        "model": model_id,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        "tools": TOOLS,
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    timings: list[float] = []
    _timings.set(timings)
    begin = time.perf_counter()
    response = (await service.create(body)).to_openai()
    end = time.perf_counter()
    first, final = (timings[0], timings[-1]) if timings else (end, end)
    usage = response["usage"]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    message = response["choices"][0]["message"]
    return Sample(
        latency_s=end - begin,
        ttft_s=first - begin,
        decode_s=final - first,
        completion_tokens=usage["completion_tokens"],
        prompt_tokens=usage["prompt_tokens"],
        cached_tokens=int(cached),
        correct=is_correct(response, name, argument),
        answer=json.dumps(
            [call["function"] for call in message.get("tool_calls") or []] or message.get("content")
        )[:200],
    )


async def run_level(
    service: ChatService, model_id: str, concurrency: int, max_tokens: int, cell: Cell
) -> None:
    """c=1: the 8 questions in turn; c>1: 2 x 8 (at least ``concurrency``) requests at once."""
    started = time.perf_counter()
    if concurrency == 1:
        samples = [await one_request(service, model_id, i, max_tokens) for i in range(8)]
    else:
        count = max(concurrency, 2 * len(QUESTIONS))
        semaphore = asyncio.Semaphore(concurrency)

        async def bounded(index: int) -> Sample:
            async with semaphore:
                return await one_request(service, model_id, index, max_tokens)

        samples = list(await asyncio.gather(*(bounded(i) for i in range(count))))
    cell.wall_s += time.perf_counter() - started
    cell.samples += samples


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def find_model(card_name: str) -> Path:
    for card in sorted(REPOSITORY.glob("*/1/model_card.json")):
        if json.loads(card.read_text(encoding="utf-8")).get("name") == card_name:
            return card.parent
    raise SystemExit(f"{card_name} is not built: run `fncall build-model` first")


async def bench(
    url: str, repository: Path, modes: list[Mode], levels: list[int], rounds: int, max_tokens: int
) -> dict[tuple[Mode, int], Cell]:
    engine = TritonEngine(url)
    models = []
    for mode in modes:
        model = ServedModel.load(repository / mode.name / "1", mode.name)
        models.append(dataclasses.replace(model, id=mode.name))
    service = ChatService(ModelRegistry(models), TimedEngine(engine))  # type: ignore[arg-type]
    cells = {(mode, level): Cell() for level in levels for mode in modes}
    try:
        for mode in modes:  # warm-up: sessions, grammar compiler; fills the cache once
            await one_request(service, mode.name, 0, max_tokens)
        for done in range(1, rounds + 1):
            for level in levels:
                for mode in modes:
                    await run_level(service, mode.name, level, max_tokens, cells[(mode, level)])
            print(f"after round {done}:", file=sys.stderr)
            print_table(cells, sys.stderr)
    finally:
        await engine.close()
    return cells


def print_table(cells: dict[tuple[Mode, int], Cell], out: TextIO) -> None:
    header = ["model", "prefix cache", "concurrency", "requests", "p50 s", "p95 s", "TTFT p50 ms"]
    header += ["requests/s", "decode tok/s", "cache hit", "correct calls"]
    print("| " + " | ".join(header) + " |", file=out)
    print("|" + "---|" * len(header), file=out)
    for (mode, level), cell in cells.items():
        if cell.samples:
            row = " | ".join(cell.cells())
            on = "on" if mode.prefix_cache else "off"
            line = f"| {mode.model} | {on} | {level} | {len(cell.samples)} | {row} |"
            print(line, file=out, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        action="append",
        help="card name of a built model (repeatable; default: qwen2.5-coder-0.5b-instruct)",
    )
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: cores)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    threads = args.threads or physical_cores()
    levels = [int(c) for c in args.concurrency.split(",")]
    modes = modes_of([find_model(name) for name in args.model or ["qwen2.5-coder-0.5b-instruct"]])
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            parameters = {
                "max_active_sequences": max(levels),
                "max_seq_len": 1024,
                "intra_op_threads": threads,
                "prefix_cache": mode.prefix_cache,
            }
            stage_model(mode.artifacts, Path(tmp), mode.name, parameters)
        with TritonLauncher(Path(tmp), [mode.name for mode in modes]) as launcher:
            cells = asyncio.run(
                bench(launcher.grpc_url, Path(tmp), modes, levels, args.rounds, args.max_tokens)
            )
    load_after = os.getloadavg()
    print(
        f"\n{cpu_model()}, {threads} ORT threads; 4 tools, 8 questions, "
        f"tool_choice auto, temperature 0, max_tokens {args.max_tokens}; {args.rounds} "
        f"interleaved rounds; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    print_table(cells, sys.stdout)
    wrong = [x.answer for cell in cells.values() for x in cell.samples if not x.correct]
    for answer in sorted(set(wrong))[:5]:
        print("wrong answer, e.g.:", answer)


if __name__ == "__main__":
    main()
