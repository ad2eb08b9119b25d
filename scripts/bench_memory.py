"""Resident memory over a long run of distinct tool requests: does the service keep growing?

Starts ``fncall serve`` on the built default model (16 slots, the default ``max_seq_len``) and
sends ``--requests`` chat requests through the REST API, ``--concurrency`` at a time, each one
distinct: a system message of its own first and bench_fncall's 4 tools renamed for that request,
so the prefix cache (prompt KV kept in the slots) keeps missing and evicting and every grammar
is new (the compiled-grammar caches fill and evict too). After every ``--every`` requests (in
flight ones drained) it reads the resident memory (``VmRSS``, and its anonymous part
``RssAnon``) of each process in the service's process tree: the service, ``tritonserver`` and
the Python backend stub that runs the model. Prints a table (requests done -> MiB per process,
prefix-cache hit rate and requests/s since the last sample), the prefix cache's budget (the KV
preallocated for ``max_active_sequences`` x ``max_seq_len`` tokens, touched lazily as slots
fill) and the growth from the first sample after warm-up to the last, with the CPU and load.

Run: ``python scripts/bench_memory.py [--requests 2000] [--every 200] [--max-tokens 8]``
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import re
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench_fncall import QUESTIONS, SYSTEM, TOOLS, cpu_model, find_model
from scripts.bench_streaming import MODEL, fncall_service
from service.modelcard import ModelCard
from service.runtime.llm_config import LlmConfig

MIB = 2**20
_COUNTER = re.compile(r"^(fncall_prompt(?:_cached)?_tokens_total)\{[^}]*\} (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Sample:
    """Memory and counters after ``requests`` requests."""

    requests: int
    rss: dict[str, int]  # bytes per process kind
    anon: int  # bytes, the whole tree
    prompt_tokens: float
    cached_tokens: float
    at: float  # perf_counter


def tree(root: int) -> list[int]:
    """``root`` and its descendants (from ``/proc/<pid>/stat``)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += parents.get(pid, [])
    return found


def kind(pid: int, root: int) -> str:
    """``service`` for the root, else the program name (``tritonserver``, the backend stub)."""
    if pid == root:
        return "service"
    argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    return Path(argv0).name


def memory(root: int) -> tuple[dict[str, int], int]:
    """Resident bytes per process kind, and anonymous resident bytes of the whole tree."""
    rss: dict[str, int] = {}
    anon = 0
    for pid in tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            name = kind(pid, root)
        except OSError:  # exited meanwhile
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss[name] = rss.get(name, 0) + int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
        anon += int(fields.get("RssAnon", "0 kB").split()[0]) * 1024
    return rss, anon


def counters(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for name, value in _COUNTER.findall(text):
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def sample(url: str, root: int, requests: int) -> Sample:
    rss, anon = memory(root)
    totals = counters(url)
    return Sample(
        requests,
        rss,
        anon,
        totals.get("fncall_prompt_tokens_total", 0.0),
        totals.get("fncall_prompt_cached_tokens_total", 0.0),
        time.perf_counter(),
    )


def request_body(index: int, max_tokens: int) -> dict[str, Any]:
    """Request ``index``: its own system message and tool names, one of 8 questions."""
    tools = copy.deepcopy(TOOLS)
    for tool in tools:
        tool["function"]["name"] += f"_{index}"
        tool["function"]["description"] += f" (catalogue {index})"
    system = f"Session {index}. {SYSTEM}"
    question = QUESTIONS[index % len(QUESTIONS)][0]
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return {
        "model": MODEL,
        "messages": messages,
        "tools": tools,
        "temperature": 0.0,
        "max_tokens": max_tokens,
    }


async def run(url: str, root: int, args: argparse.Namespace) -> list[Sample]:
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="bench", timeout=600, max_retries=0)
    semaphore = asyncio.Semaphore(args.concurrency)

    async def one(index: int) -> None:
        async with semaphore:
            await client.chat.completions.create(**request_body(index, args.max_tokens))

    samples = [sample(url, root, 0)]
    try:
        for start in range(0, args.requests, args.every):
            stop = min(args.requests, start + args.every)
            await asyncio.gather(*(one(i) for i in range(start, stop)))
            samples.append(sample(url, root, stop))
            print(f"{stop} requests: {sum(samples[-1].rss.values()) / MIB:.0f} MiB",
                  file=sys.stderr, flush=True)  # fmt: skip
    finally:
        await client.close()
    return samples


def kv_budget_bytes(card: ModelCard, config: LlmConfig) -> int:
    """The preallocated KV cache, which holds the prefix cache (docs/triton_model.md)."""
    itemsize = 2 if card.extra.get("kv_dtype") == "float16" else 4
    per_token = 2 * card.num_layers * card.num_kv_heads * card.head_dim * itemsize
    return config.max_active_sequences * config.max_seq_len * per_token


def print_table(samples: list[Sample]) -> None:
    kinds = sorted({k for s in samples for k in s.rss}, key=lambda k: (k != "service", k))
    header = ["requests", *(f"{k} MiB" for k in kinds), "total MiB", "anonymous MiB"]
    header += ["cache hit since last", "requests/s since last"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---:|" * len(header))
    for before, now in zip([None, *samples], samples, strict=False):
        hit = rate = "-"
        if before is not None:
            prompt = now.prompt_tokens - before.prompt_tokens
            hit = f"{100 * (now.cached_tokens - before.cached_tokens) / max(1.0, prompt):.0f} %"
            rate = f"{(now.requests - before.requests) / (now.at - before.at):.2f}"
        cells = [str(now.requests), *(f"{now.rss.get(k, 0) / MIB:.0f}" for k in kinds)]
        cells += [f"{sum(now.rss.values()) / MIB:.0f}", f"{now.anon / MIB:.0f}", hit, rate]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="distinct tool requests in all")
    parser.add_argument("--every", type=int, default=200, help="requests between samples")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument(
        "--max-tokens", type=int, default=8, help="answer tokens per request (kept short)"
    )
    args = parser.parse_args()
    config = LlmConfig(max_active_sequences=16)
    parameters = {"max_active_sequences": config.max_active_sequences}
    card = ModelCard.load(find_model(MODEL))
    load_before = os.getloadavg()
    with fncall_service(parameters) as service:
        samples = asyncio.run(run(service.url, service.process.pid, args))
    load_after = os.getloadavg()
    prompt = (samples[-1].prompt_tokens - samples[0].prompt_tokens) / max(1, args.requests)
    print(
        f"\n{MODEL} ({card.precision}), {args.requests} distinct tool requests ({prompt:.0f} "
        f"prompt tokens on average, <= {args.max_tokens} answer tokens), {args.concurrency} at a "
        f"time; "
        f"{cpu_model()}, {os.cpu_count()} logical cores; load average {load_before[0]:.1f} "
        f"before, {load_after[0]:.1f} after"
    )
    budget = kv_budget_bytes(card, config)
    print(
        f"prefix cache budget: the KV cache, {config.max_active_sequences} slots x "
        f"{config.max_seq_len} tokens = {budget / MIB:.0f} MiB preallocated (pages become "
        f"resident as slots are first written); compiled grammars kept: "
        f"{config.grammar_cache_size}\n"
    )
    print_table(samples)
    first, last = samples[min(1, len(samples) - 1)], samples[-1]
    growth = (sum(last.rss.values()) - sum(first.rss.values())) / MIB
    print(
        f"\ngrowth from {first.requests} to {last.requests} requests: {growth:+.0f} MiB resident, "
        f"{(last.anon - first.anon) / MIB:+.0f} MiB anonymous"
    )


if __name__ == "__main__":
    main()
