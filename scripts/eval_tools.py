"""Tool-calling evaluation: the cases in ``scripts/eval_data`` through the REST API, scored by
structure, one row per category.

Categories: ``single`` (one tool, one call), ``choose`` (the right tool of several),
``parallel_one`` (several calls of one tool), ``parallel_many`` (calls of different tools),
``no_call`` (no offered tool applies: the answer must be text), ``agent_loop`` (call and tool
result in the history, tools still offered: the answer must be text mentioning the result).

Scoring (a case passes or fails):

- calls: the returned calls equal the expected ones as a multiset (order free; no extra, no
  missing, no duplicates). Names must be equal. Each argument the case lists must be present
  and equal after JSON normalisation: numbers by value (``100 == 100.0``), strings compared
  case-insensitively with whitespace collapsed and trailing ``.!?`` dropped, and a string may
  add a qualifier after a comma (``"Paris, France"`` matches ``"Paris"``). Arguments the case
  does not list may appear only when the tool's schema declares them.
- no calls: no ``tool_calls``; for ``agent_loop``, the content mentions every listed value
  (``a|b``: either).

Also counted over all cases: calls with undeclared properties, answers with identical
repeated calls, answers with calls whose ``finish_reason`` is not ``tool_calls``.

Run (starts ``fncall serve`` on free ports over the built default model):
``python scripts/eval_tools.py --split dev``; or against a running service:
``--base-url http://127.0.0.1:8000/v1``. Tune on ``dev``; ``test`` is held out.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "scripts" / "eval_data"
CATEGORIES = ("single", "choose", "parallel_one", "parallel_many", "no_call", "agent_loop")
MODEL = "qwen2.5-coder-0.5b-instruct"


@dataclass
class Result:
    """One case's outcome."""

    case: dict[str, Any]
    ok: bool
    calls: list[dict[str, Any]] = field(default_factory=list)
    content: str | None = None
    finish_reason: str | None = None
    undeclared: bool = False  # a call argument its schema does not declare
    repeated: bool = False  # identical calls in one answer
    finish_mismatch: bool = False  # calls, but finish_reason is not "tool_calls"
    error: str | None = None


def _text(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip().rstrip(".!?").strip().casefold()


def value_matches(expected: Any, actual: Any) -> bool:
    """Equality after normalisation (see the module docstring)."""
    if isinstance(expected, str) and isinstance(actual, str):
        want, got = _text(expected), _text(actual)
        return got == want or got.startswith(want + ",")
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return float(expected) == float(actual)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            value_matches(expected[key], actual[key]) for key in expected
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            value_matches(e, a) for e, a in zip(expected, actual, strict=True)
        )
    return bool(expected == actual)


def declared(schema: Mapping[str, Any]) -> set[str]:
    return set(schema.get("properties", {}))


def call_matches(expected: Mapping[str, Any], actual: Mapping[str, Any], schema: Mapping) -> bool:
    if expected["name"] != actual["name"]:
        return False
    want, got = expected["arguments"], actual["arguments"]
    if any(key not in got or not value_matches(value, got[key]) for key, value in want.items()):
        return False
    return all(key in want or key in declared(schema) for key in got)


def calls_match(
    expected: Sequence[Mapping[str, Any]],
    actual: Sequence[Mapping[str, Any]],
    schemas: Mapping[str, Mapping[str, Any]],
) -> bool:
    """Whether ``actual`` is ``expected`` in some order."""
    if len(expected) != len(actual):
        return False
    return any(
        all(
            call_matches(e, a, schemas.get(a["name"], {}))
            for e, a in zip(expected, order, strict=True)
        )
        for order in itertools.permutations(actual)
    )


def mentions(content: str | None, wanted: Sequence[str]) -> bool:
    text = (content or "").casefold()
    return all(any(option.casefold() in text for option in w.split("|")) for w in wanted)


def score(case: Mapping[str, Any], message: Any, finish: str | None, tools: Mapping) -> Result:
    """Score one answer (``message`` is the SDK's ``ChatCompletionMessage``)."""
    calls = []
    for call in message.tool_calls or []:
        try:
            arguments = json.loads(call.function.arguments)
        except json.JSONDecodeError:
            arguments = {"<unparsable>": call.function.arguments}
        calls.append({"name": call.function.name, "arguments": arguments})
    schemas = {name: tools[name]["parameters"] for name in case["tools"]}
    expected = case["expected"]
    ok = calls_match(expected["calls"], calls, schemas)
    if ok and not expected["calls"]:
        ok = mentions(message.content, expected.get("mentions", []))
    keys = [json.dumps(c, sort_keys=True) for c in calls]
    return Result(
        case=dict(case),
        ok=ok,
        calls=calls,
        content=message.content,
        finish_reason=finish,
        undeclared=any(set(c["arguments"]) - declared(schemas.get(c["name"], {})) for c in calls),
        repeated=len(set(keys)) < len(keys),
        finish_mismatch=bool(calls) and finish != "tool_calls",
    )


def request_body(case: Mapping[str, Any], tools: Mapping, args: argparse.Namespace) -> dict:
    body: dict[str, Any] = {
        "model": args.model,
        "messages": case["messages"],
        "tools": [
            {"type": "function", "function": {"name": name, **tools[name]}}
            for name in case["tools"]
        ],
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
    }
    if args.seed is not None:
        body["seed"] = args.seed
    for key in ("tool_choice", "parallel_tool_calls"):
        if key in case:
            body[key] = case[key]
    return body


async def run_cases(
    client: openai.AsyncOpenAI,
    cases: Sequence[dict[str, Any]],
    tools: Mapping,
    args: argparse.Namespace,
) -> list[Result]:
    gate = asyncio.Semaphore(args.concurrency)

    async def one(case: dict[str, Any]) -> Result:
        async with gate:
            try:
                response = await client.chat.completions.create(**request_body(case, tools, args))
            except openai.APIError as exc:
                return Result(case=case, ok=False, error=str(exc))
            choice = response.choices[0]
            result = score(case, choice.message, choice.finish_reason, tools)
            print(f"{'ok  ' if result.ok else 'FAIL'} {case['id']}", file=sys.stderr, flush=True)
            return result

    return list(await asyncio.gather(*(one(case) for case in cases)))


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def table(results: Sequence[Result], splits: Sequence[str]) -> str:
    """Markdown: one row per category, cases and accuracy per split."""
    head = "| category | " + " | ".join(f"{s} cases | {s} accuracy" for s in splits) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(splits)]
    for category in (*CATEGORIES, "all"):
        cells = []
        for split in splits:
            rows = [
                r
                for r in results
                if r.case["split"] == split and category in ("all", r.case["category"])
            ]
            passed = sum(r.ok for r in rows)
            cells += [str(len(rows)), f"{100 * passed / len(rows):.0f}%" if rows else "-"]
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@contextmanager
def served(args: argparse.Namespace) -> Iterator[str]:
    """The base URL: ``--base-url``, or a ``fncall serve`` started here for the run."""
    if args.base_url:
        yield args.base_url
        return
    from service.model_repository import stage_model
    from tests.integration.conftest import built_model
    from tests.integration.serving import running_service

    artifacts = built_model(args.model)
    if artifacts is None:
        raise SystemExit(f"{args.model} is not built: run `make models`")
    with tempfile.TemporaryDirectory(prefix="fncall-eval-") as workdir:
        repository = Path(workdir) / "repository"
        stage_model(artifacts, repository, "llm", {"max_active_sequences": args.concurrency})
        with running_service(repository, ["llm"], Path(workdir)) as service:
            yield f"{service.url}/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running service's /v1 URL (default: start one)")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--split", choices=["dev", "test", "all"], default="all")
    parser.add_argument("--category", action="append", choices=CATEGORIES)
    parser.add_argument(
        "--limit", type=int, help="only the first N cases of each category in each split"
    )
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--output", type=Path, help="write every case's outcome here (JSONL)")
    parser.add_argument("--show-failures", action="store_true")
    args = parser.parse_args()

    tools = json.loads((DATA / "tools.json").read_text(encoding="utf-8"))
    cases = [json.loads(line) for line in (DATA / "cases.jsonl").read_text().splitlines()]
    cases = [
        c
        for c in cases
        if args.split in ("all", c["split"])
        and (not args.category or c["category"] in args.category)
    ]
    if args.limit is not None:
        counts: dict[tuple[str, str], int] = {}
        kept = []
        for case in cases:
            key = (case["category"], case["split"])
            counts[key] = counts.get(key, 0) + 1
            if counts[key] <= args.limit:
                kept.append(case)
        cases = kept
    started = time.monotonic()
    with served(args) as base_url:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="eval", timeout=900, max_retries=0)
        results = asyncio.run(run_cases(client, cases, tools, args))
    elapsed = time.monotonic() - started
    splits = ["dev", "test"] if args.split == "all" else [args.split]
    print(table(results, splits))
    print(
        f"\n{len(results)} cases in {elapsed:.0f} s; temperature {args.temperature}, "
        f"max_tokens {args.max_tokens}, concurrency {args.concurrency}"
    )
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores); load average {os.getloadavg()}")
    for label, flag in (
        ("calls with undeclared properties", "undeclared"),
        ("answers repeating an identical call", "repeated"),
        ("answers with calls not ending in finish_reason tool_calls", "finish_mismatch"),
        ("request errors", "error"),
    ):
        print(f"{label}: {sum(bool(getattr(r, flag)) for r in results)}")
    if args.show_failures:
        for r in results:
            if not r.ok:
                print(
                    f"FAIL {r.case['id']}: calls={r.calls} content={(r.content or '')[:120]!r}"
                    f" finish={r.finish_reason} error={r.error}"
                )
    if args.output:
        with args.output.open("w", encoding="utf-8") as sink:
            for r in results:
                row = {
                    "id": r.case["id"],
                    "ok": r.ok,
                    "calls": r.calls,
                    "content": r.content,
                    "finish_reason": r.finish_reason,
                    "error": r.error,
                }
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
