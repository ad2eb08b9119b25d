"""Benchmark the cost of grammar-constrained decoding, side by side in one run.

1. Compile: ``GrammarCompiler`` over the model's tokenizer, per tool set: cold (first compile of
   a grammar) and cached (a repeated tool set: cache hit, ``deep_copy``, pre-fill fed), and the
   mean time of one token mask while a call is written.
2. Decode: the Triton ``llm`` model (embedded, same build) answering forced tool calls
   (``tool_choice: required``, greedy) without and with the grammar, at each concurrency; and a
   mixed batch where half the requests are constrained, reporting the unconstrained half's
   speed (constrained rows must not slow their neighbours).

Run: ``python scripts/bench_grammar.py`` (default model: the built Qwen2.5-Coder-0.5B).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.engine import TritonEngine
from service.generation import SamplingParams
from service.grammar import request_grammar
from service.launcher import TritonLauncher
from service.model_repository import stage_model
from service.models import ServedModel
from service.prompting.chat_prompt import build_prompt
from service.protocol import parse_request
from service.runtime.constraint import GrammarCompiler
from service.runtime.onnx_decoder import physical_cores

REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"
WAVES = 3


def _tool(name: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "parameters": schema}}


STRING = {"type": "string"}
WEATHER = _tool(
    "get_weather",
    {"city": STRING, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    ["city"],
)
FLIGHT = _tool(
    "book_flight",
    {
        "origin": STRING,
        "destination": STRING,
        "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
        "legs": {
            "type": "array",
            "items": {"type": "object", "properties": {"date": STRING}, "required": ["date"]},
            "maxItems": 2,
        },
    },
    ["origin", "destination", "passengers"],
)
EVENT = _tool(
    "create_event",
    {
        "title": STRING,
        "start": STRING,
        "minutes": {"type": "integer", "minimum": 5, "maximum": 480},
        "attendees": {"type": "array", "items": STRING},
    },
    ["title", "start"],
)
SEARCH = _tool("search_products", {"query": STRING, "max_price": {"type": "number"}}, ["query"])
TOOLSETS = {
    "1 tool": [WEATHER],
    "2 tools": [WEATHER, FLIGHT],
    "4 tools": [WEATHER, FLIGHT, EVENT, SEARCH],
}
QUESTIONS = [
    "What is the weather in Paris in celsius?",
    "Book a flight from Oslo to Rome for 2 people on 2025-05-01.",
    "Schedule a 45 minute design review tomorrow at 9:00.",
    "Find headphones under 80 dollars.",
]


@dataclass(frozen=True)
class Job:
    """One benchmark request: prompt ids, and the grammar it may be decoded under."""

    prompt_ids: list[int]
    grammar: str
    prefill_tokens: int


def jobs(model: ServedModel) -> list[Job]:
    tools = TOOLSETS["4 tools"]
    made = []
    for question in QUESTIONS:
        body = {"model": model.id, "messages": [{"role": "user", "content": question}]}
        request = parse_request({**body, "tools": tools, "tool_choice": "required"})
        prompt = build_prompt(model, request)
        grammar = request_grammar(request, model.dialect.syntax, model.tokenizer)
        assert grammar is not None
        made.append(Job(prompt.ids, grammar, prompt.prefill_tokens))
    return made


def compile_rows(model: ServedModel, model_dir: Path, vocab: int) -> list[list[str]]:
    """Cold compile, cached reuse and per-token mask time per tool set."""
    tokenizer_json = (model_dir / model.card.tokenizer_file).read_text(encoding="utf-8")
    compiler = GrammarCompiler(tokenizer_json, vocab)
    rows = []
    for label, tools in TOOLSETS.items():
        body = {"model": model.id, "messages": [{"role": "user", "content": QUESTIONS[0]}]}
        request = parse_request({**body, "tools": tools, "tool_choice": "required"})
        prompt = build_prompt(model, request)
        grammar = request_grammar(request, model.dialect.syntax, model.tokenizer)
        assert grammar is not None
        prefill = prompt.ids[len(prompt.ids) - prompt.prefill_tokens :]
        cold = []
        for run in range(5):  # a comment makes each grammar new to the cache
            begin = time.perf_counter()
            compiler.constraint(f"{grammar}// cold run {label} {run}\n", prefill)
            cold.append(time.perf_counter() - begin)
        compiler.constraint(grammar, prefill)
        begin = time.perf_counter()
        for _ in range(20):
            constraint = compiler.constraint(grammar, prefill)
        cached = (time.perf_counter() - begin) / 20
        masks = []
        call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
        for token in model.tokenizer.encode_rendered(call[len(prompt.prefill) :]):
            begin = time.perf_counter()
            allowed = constraint.allowed()
            masks.append(time.perf_counter() - begin)
            assert allowed[token]
            constraint.advance(token)
        rows.append(
            [
                label,
                f"{len(grammar)}",
                f"{1000 * statistics.median(cold):.1f}",
                f"{1000 * cached:.2f}",
                f"{1000 * statistics.mean(masks):.2f}",
            ]
        )
    return rows


async def decode(
    engine: TritonEngine, work: list[Job], concurrency: int, max_tokens: int, constrained: str
) -> tuple[float, float, float]:
    """``WAVES`` waves of ``concurrency`` requests sent together (so after the first token every
    row only decodes). ``constrained``: ``none``, ``all`` or ``half`` (odd-numbered requests).
    Returns the mean per-request decode tok/s of the unconstrained and the constrained requests
    (0 when none) and the aggregate tok/s (prefill included)."""
    speeds: dict[bool, list[float]] = {False: [], True: []}
    total = 0

    async def one(index: int) -> None:
        nonlocal total
        job = work[index % len(work)]
        grammar = constrained == "all" or (constrained == "half" and index % 2 == 1)
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=0.0,
            grammar=job.grammar if grammar else None,
            grammar_prefill_tokens=job.prefill_tokens if grammar else 0,
        )
        first, tokens = 0.0, 0
        async for chunk in engine.generate("bench", job.prompt_ids, params):
            if chunk.token_ids and not tokens:
                first = time.perf_counter()
            tokens += len(chunk.token_ids)
        if tokens > 1:
            speeds[grammar].append((tokens - 1) / (time.perf_counter() - first))
        total += tokens

    begin = time.perf_counter()
    for wave in range(WAVES):
        await asyncio.gather(*(one(wave * concurrency + i) for i in range(concurrency)))
    wall = time.perf_counter() - begin
    mean = [statistics.mean(speeds[key]) if speeds[key] else 0.0 for key in (False, True)]
    return mean[0], mean[1], total / wall


async def decode_rows(url: str, work: list[Job], levels: list[int], max_tokens: int) -> list[Any]:
    engine = TritonEngine(url)
    rows = []
    try:
        await decode(engine, work, 2, 8, "all")  # warm-up (and the grammar cache)
        for level in levels:
            for mode in ("none", "all", "half"):
                free, constrained, aggregate = await decode(engine, work, level, max_tokens, mode)
                rows.append((mode, level, free, constrained, aggregate))
    finally:
        await engine.close()
    return rows


def _fmt(value: float) -> str:
    return f"{value:.1f}" if value else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llm", help="Triton model folder of a build")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: cores)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    threads = args.threads or physical_cores()
    levels = [int(c) for c in args.concurrency.split(",")]
    model_dir = REPOSITORY / args.model / "1"
    model = ServedModel.load(model_dir, args.model)
    work = jobs(model)

    print(f"\n{model.id} ({model.card.precision}): grammar compile (llguidance), {threads} cores")
    print("| tool set | grammar chars | cold compile ms | cached ms | mask ms/token |")
    print("|---|---|---|---|---|")
    for row in compile_rows(model, model_dir, model.card.vocab_size):
        print("| " + " | ".join(row) + " |")

    with tempfile.TemporaryDirectory() as tmp:
        parameters = {"max_active_sequences": max(levels), "intra_op_threads": threads}
        stage_model(model_dir, Path(tmp), "bench", parameters)
        with TritonLauncher(Path(tmp), ["bench"]) as launcher:
            rows = asyncio.run(decode_rows(launcher.grpc_url, work, levels, args.max_tokens))

    print(f"\nTriton decode, forced calls (required, 4 tools), greedy <= {args.max_tokens}")
    print("| grammar | concurrency | free tok/s per request | constrained tok/s per request |"
          " aggregate tok/s |")  # fmt: skip
    print("|---|---|---|---|---|")
    for mode, level, free, constrained, aggregate in rows:
        label = {"none": "off", "all": "on", "half": "half the requests"}[mode]
        cells = [label, str(level), _fmt(free), _fmt(constrained), f"{aggregate:.1f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
