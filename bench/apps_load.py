"""Load test of the served hub: N concurrent gradio_client clients ask the routed chat for D seconds.

Starts `dsuite serve` on a free loopback port (or uses --url), runs the baseline (one client alone) and
then N clients at once for the same duration, and prints ONE JSON line: requests, errors, p50/p95
latency and throughput of each, side by side.

    python bench/apps_load.py [--clients 20] [--seconds 30] [--max-new-tokens 8] [--url URL]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROMPTS = [
    "What is the capital of France?",
    "Explain what a stock dividend is in one sentence.",
    "I want to cancel my order, it never arrived.",
    "Patient denies chest pain. Which codes apply?",
]
logger = logging.getLogger("bench.apps_load")
CLIENT_TIMEOUT_S = 900


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    command = [sys.executable, "-m", "apps", "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 300
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dsuite serve exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise TimeoutError(f"{url} did not answer within 300 s")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 3)


def run_load(url: str, clients: int, seconds: float, max_new_tokens: int) -> dict:
    """``clients`` threads, each with its own gradio_client, sending requests until ``seconds`` pass."""
    from gradio_client import Client

    # a queued request may wait long on a busy CPU: a slow answer is a latency, not a client-side error
    options = {"timeout": CLIENT_TIMEOUT_S}
    connections = [Client(url, verbose=False, httpx_kwargs=options) for _ in range(clients)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker(index: int) -> None:
        client = connections[index]
        n = 0
        while time.perf_counter() < stop:
            prompt = PROMPTS[(index + n) % len(PROMPTS)]
            n += 1
            started = time.perf_counter()
            try:
                answer, _card = client.predict(prompt, max_new_tokens, api_name="/chat")
                ok = isinstance(answer, str)
            except Exception as exc:  # every failure counts as an error
                ok = False
                with lock:
                    errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
            elapsed = time.perf_counter() - started
            with lock:
                if ok:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    for client in connections:
        client.close()
    return {
        "clients": clients,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "throughput_rps": round(len(latencies) / wall, 3),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--url", default=None, help="an already running hub (default: start one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    process = None
    url = args.url
    if url is None:
        process, url = start_server()
    try:
        from gradio_client import Client

        Client(url, verbose=False).predict(PROMPTS[0], args.max_new_tokens, api_name="/chat")  # warm-up
        baseline = run_load(url, 1, args.seconds, args.max_new_tokens)
        ours = run_load(url, args.clients, args.seconds, args.max_new_tokens)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    result = {
        "bench": "apps_load",
        "endpoint": "/chat (routed hub)",
        "max_new_tokens": args.max_new_tokens,
        "seconds": args.seconds,
        "baseline_one_client": baseline,
        "concurrent": ours,
        "p95_ratio_vs_one_client": (round(ours["p95_s"] / baseline["p95_s"], 2)
                                    if ours["p95_s"] and baseline["p95_s"] else None),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
