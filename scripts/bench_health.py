"""Health-check latency while large request bodies are validated, rendered and tokenized.

Against a running ``fncall serve``: ``--clients`` threads post ~3.9 MB chat requests (over the
context, so each is parsed, rendered and tokenized, then refused with 400 before generation),
while one thread polls ``GET /health`` every 20 ms. Prints health latency percentiles.

    python scripts/bench_health.py --url http://127.0.0.1:8000 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import threading
import time

import httpx


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor()
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line]
    return names[0] if names else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--api-key", default=os.environ.get("FNCALL_API_KEY", ""))
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--body-mb", type=float, default=3.9)
    args = parser.parse_args()

    words = "lorem ipsum dolor sit amet " * int(args.body_mb * 1024 * 1024 / 27)
    body = json.dumps(
        {"model": args.model, "messages": [{"role": "user", "content": words}], "max_tokens": 1}
    ).encode()
    headers = {"content-type": "application/json"}
    if args.api_key:
        headers["authorization"] = f"Bearer {args.api_key}"
    stop = threading.Event()
    statuses: list[int] = []
    latencies: list[float] = []

    def post() -> None:
        with httpx.Client(base_url=args.url, headers=headers, timeout=300) as client:
            while not stop.is_set():
                statuses.append(client.post("/v1/chat/completions", content=body).status_code)

    def poll() -> None:
        with httpx.Client(base_url=args.url, timeout=30) as client:
            while not stop.is_set():
                start = time.perf_counter()
                client.get("/health").raise_for_status()
                latencies.append(time.perf_counter() - start)
                time.sleep(0.02)

    threads = [threading.Thread(target=post) for _ in range(args.clients)]
    threads.append(threading.Thread(target=poll))
    for thread in threads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    latencies.sort()

    def pct(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    print(f"CPU: {_cpu()}; load average: {os.getloadavg()}")
    print(
        f"{len(body) / 1e6:.1f} MB bodies, {args.clients} clients, {args.seconds:.0f} s: "
        f"{len(statuses)} posted (statuses {sorted(set(statuses))})"
    )
    print("| health checks | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|")
    print(f"| {len(latencies)} | {pct(0.5):.1f} | {pct(0.99):.1f} | {1000 * latencies[-1]:.1f} |")


if __name__ == "__main__":
    main()
