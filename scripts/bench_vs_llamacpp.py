"""fncall against llama.cpp's server on the same GGUF, side by side through the REST API.

Starts ``fncall serve`` on the built default model (16 slots, ONNX Runtime threads = cores) and
a llama.cpp server (``--llama-server``: the ``llama-server`` binary, or ``python -m
llama_cpp.server`` of llama-cpp-python, which answers one request at a time) on the GGUF that
model was built from, with 16 slots where the server has them and the same threads; or uses a
running llama.cpp server (``--llama-base-url``). The same requests go to both through the
``openai`` SDK in interleaved rounds (the server order alternates per round): essays (greedy, 64
tokens; c=1 tok/s and c=16 aggregate tok/s, completion tokens over wall-clock time, prefill
included) and bench_fncall's tool request (same system message and 4 tools, one of 8 questions,
temperature 0, <= 128 tokens; c=1 p50 latency and correct calls, c=16 requests/s). Prints one
Markdown table with the CPU model and load average. llama.cpp is not a dependency of fncall.

Run: ``python scripts/bench_vs_llamacpp.py --llama-server "$(which llama-server)" [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench_fncall import QUESTIONS as TOOL_QUESTIONS
from scripts.bench_fncall import SYSTEM, TOOLS, cpu_model, find_model, is_correct
from scripts.bench_streaming import MODEL, fncall_service
from scripts.bench_triton import ESSAYS
from service.launcher import free_port
from service.modelbuild.sources import PACKAGED_MODELS, default_cache_dir, materialize_packaged
from service.modelcard import ModelCard
from service.runtime.onnx_decoder import physical_cores

START_TIMEOUT_S = 300.0
SLOT_TOKENS = 1024  # KV capacity per slot on both servers (~500 prompt + 128 answer tokens fit)


@dataclass(frozen=True)
class Workload:
    """One row of the table: a kind of request sent ``requests`` times, ``concurrency`` at once."""

    label: str
    tools: bool
    concurrency: int
    requests: int


WORKLOADS = [
    Workload("essays, greedy {essay} tokens, c=1", False, 1, len(ESSAYS)),
    Workload("essays, c=16 aggregate", False, 16, 32),
    Workload("tool request (4 tools + question, ≤{tool} tokens), c=1 p50 latency", True, 1, 8),
    Workload("same, c=16: requests/s", True, 16, 32),
]


@dataclass(frozen=True)
class Answer:
    latency_s: float
    prompt_tokens: int
    completion_tokens: int
    correct: bool


@dataclass
class Cell:
    """One (workload, server) pair over all rounds: answers and wall-clock time per round."""

    rounds: list[tuple[list[Answer], float]] = field(default_factory=list)

    def answers(self) -> list[Answer]:
        return [a for answers, _ in self.rounds for a in answers]

    def median_rate(self, tokens: bool) -> float:
        """The median round's completion tokens (or requests) per second."""
        rates = [
            (sum(a.completion_tokens for a in answers) if tokens else len(answers)) / wall
            for answers, wall in self.rounds
        ]
        return statistics.median(rates)

    def text(self, workload: Workload) -> str:
        answers = self.answers()
        correct = f"{sum(a.correct for a in answers)}/{len(answers)} correct calls"
        if not workload.tools:
            per_answer = statistics.mean(a.completion_tokens for a in answers)
            return f"{self.median_rate(tokens=True):.1f} tok/s ({per_answer:.0f} tokens/answer)"
        if workload.concurrency == 1:
            return f"{statistics.median(a.latency_s for a in answers):.2f} s ({correct})"
        return f"{self.median_rate(tokens=False):.2f} ({correct})"


def label_of(workload: Workload, args: argparse.Namespace) -> str:
    return workload.label.format(essay=args.max_tokens, tool=args.tool_tokens)


def request_body(model: str, workload: Workload, index: int, args: argparse.Namespace) -> dict:
    """The ``index``-th request of ``workload`` (essays and questions in turn)."""
    if not workload.tools:
        essay = ESSAYS[index % len(ESSAYS)]
        messages = [{"role": "user", "content": essay}]
        return {"model": model, "messages": messages, "max_tokens": args.max_tokens}
    question = TOOL_QUESTIONS[index % len(TOOL_QUESTIONS)][0]
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    return {"model": model, "messages": messages, "tools": TOOLS, "max_tokens": args.tool_tokens}


async def one(client: openai.AsyncOpenAI, body: dict[str, Any], index: int) -> Answer:
    begin = time.perf_counter()
    completion = await client.chat.completions.create(**body, temperature=0.0)
    latency = time.perf_counter() - begin
    usage = completion.usage
    assert usage is not None
    correct = False
    if "tools" in body:
        _, name, argument = TOOL_QUESTIONS[index % len(TOOL_QUESTIONS)]
        try:
            correct = is_correct(completion.model_dump(), name, argument)
        except (ValueError, KeyError, TypeError):  # arguments that are not a JSON object
            correct = False
    return Answer(latency, usage.prompt_tokens, usage.completion_tokens, correct)


async def run_workload(
    client: openai.AsyncOpenAI, model: str, workload: Workload, args: argparse.Namespace
) -> tuple[list[Answer], float]:
    semaphore = asyncio.Semaphore(workload.concurrency)

    async def bounded(index: int) -> Answer:
        async with semaphore:
            return await one(client, request_body(model, workload, index, args), index)

    started = time.perf_counter()
    answers = await asyncio.gather(*(bounded(i) for i in range(workload.requests)))
    return list(answers), time.perf_counter() - started


async def bench(urls: dict[str, str], args: argparse.Namespace) -> dict[tuple[int, str], Cell]:
    clients = {
        name: openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="bench", timeout=900, max_retries=0)
        for name, url in urls.items()
    }
    models = {name: (await client.models.list()).data[0].id for name, client in clients.items()}
    cells = {(w, name): Cell() for w in range(len(WORKLOADS)) for name in urls}
    try:
        for name, client in clients.items():  # warm-up: sessions, grammar compiler
            for workload in (WORKLOADS[0], WORKLOADS[2]):
                await one(client, request_body(models[name], workload, 0, args), 0)
        for round_ in range(args.rounds):
            order = list(urls) if round_ % 2 == 0 else list(reversed(urls))
            for w, workload in enumerate(WORKLOADS):
                for name in order:
                    result = await run_workload(clients[name], models[name], workload, args)
                    cells[(w, name)].rounds.append(result)
                    label = label_of(workload, args)
                    print(f"round {round_ + 1} {name}: {label}: {result[1]:.1f} s",
                          file=sys.stderr, flush=True)  # fmt: skip
    finally:
        for client in clients.values():
            await client.close()
    return cells


def packaged_gguf() -> Path:
    """The GGUF the built default model came from (a packaged model is joined and verified)."""
    source = ModelCard.load(find_model(MODEL)).source
    if source.get("kind") == "packaged":
        return materialize_packaged(PACKAGED_MODELS[source["package"]], default_cache_dir(), print)
    if source.get("kind") == "gguf":
        return Path(source["path"])
    raise SystemExit(f"{MODEL} was not built from a GGUF ({source}); pass --gguf")


def llama_command(spec: str, gguf: Path, port: int, threads: int, slots: int) -> list[str]:
    """``spec`` with the flags of its kind: llama-cpp-python's server or ``llama-server``."""
    command = shlex.split(spec)
    common = ["--host", "127.0.0.1", "--port", str(port)]
    if "llama_cpp.server" in spec:  # one sequence: requests are served one at a time
        command += ["--model", str(gguf), "--model_alias", MODEL, *common]
        command += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
        # logits of the last prompt token only, as llama-server (its default computes them all)
        return [*command, "--n_ctx", str(SLOT_TOKENS), "--logits_all", "false"]
    command += ["-m", str(gguf), "--alias", MODEL, *common, "-t", str(threads)]
    command += ["-tb", str(threads), "-np", str(slots), "-c", str(slots * SLOT_TOKENS)]
    return command


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def llama_server(command: list[str]) -> Iterator[str]:
    """Start a llama.cpp server; its base URL once ``/v1/models`` answers; stopped on exit."""
    port = command[command.index("--port") + 1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _ready(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-3000:]
                    raise SystemExit(f"the llama.cpp server did not start:\n{tail}")
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def print_table(
    cells: dict[tuple[int, str], Cell], names: list[str], args: argparse.Namespace
) -> None:
    print("| workload | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for w, workload in enumerate(WORKLOADS):
        label = label_of(workload, args)
        row = [cells[(w, name)].text(workload) for name in names]
        print(f"| {label} | " + " | ".join(row) + " |")
    prompt = [
        f"{statistics.median(a.prompt_tokens for a in cells[(2, name)].answers()):.0f}"
        for name in names
    ]
    print("| tool request prompt tokens (median) | " + " | ".join(prompt) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--llama-server",
        help='command: "llama-server" or "python -m llama_cpp.server" (+ model, port, threads)',
    )
    where.add_argument("--llama-base-url", help="a running llama.cpp server, e.g. http://h:8080")
    parser.add_argument("--llama-args", default="", help='extra server flags, e.g. "--jinja"')
    parser.add_argument("--gguf", type=Path, help="default: the GGUF fncall's model came from")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="both servers (0: cores)")
    parser.add_argument("--slots", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64, help="essays")
    parser.add_argument("--tool-tokens", type=int, default=128, help="tool requests")
    args = parser.parse_args()
    threads = args.threads or physical_cores()
    parameters = {
        "max_active_sequences": args.slots,
        "max_seq_len": SLOT_TOKENS,
        "intra_op_threads": threads,
    }
    if args.llama_base_url:
        llama = f"llama.cpp at {args.llama_base_url}"
        started: AbstractContextManager[str] = nullcontext(args.llama_base_url)
    else:
        gguf = args.gguf or packaged_gguf()
        command = llama_command(args.llama_server, gguf, free_port(), threads, args.slots)
        command += shlex.split(args.llama_args)
        llama = "llama.cpp: `" + shlex.join(command) + "`"
        started = llama_server(command)
    load_before = os.getloadavg()
    with fncall_service(parameters) as service, started as llama_url:
        cells = asyncio.run(bench({"fncall": service.url, "llama.cpp": llama_url}, args))
    load_after = os.getloadavg()
    precision = ModelCard.load(find_model(MODEL)).precision
    print(
        f"\n{MODEL}: fncall (Triton, {precision} ONNX, {args.slots} slots, {threads} ORT threads) "
        f"against {llama}\nCPU: {cpu_model()}, {os.cpu_count()} logical cores; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; {args.rounds} interleaved "
        f"rounds, temperature 0 (throughput: median round; latency: p50 over all rounds)\n"
    )
    print_table(cells, ["fncall", "llama.cpp"], args)


if __name__ == "__main__":
    main()
