"""Shared fixtures: the real embedded base (prepared once by `make setup`), free ports, the CLI runner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"


@pytest.fixture(scope="session", autouse=True)
def _threads():
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def embedded_base():
    """The real embedded base model (SmolLM2-135M-Instruct), loaded once per test session."""
    from core_model import load_base

    return load_base(None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dsuite_command(*args: str) -> list[str]:
    """The real `dsuite` console script of this environment."""
    return [sys.executable, "-m", "apps", *args]


def run_dsuite(*args: str, timeout: float = 300, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``dsuite ARGS`` in a subprocess from the repository root, its output captured as text; ``stdin``: what
    the command reads, e.g. one chat message per line."""
    return subprocess.run(
        dsuite_command(*args), cwd=REPO, input=stdin, capture_output=True, text=True, timeout=timeout
    )


def last_json(stdout: str):
    """The JSON value a command printed on its last line."""
    import json

    return json.loads(stdout.strip().splitlines()[-1])


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 240.0) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
