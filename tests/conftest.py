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


def invoke_dsuite(*args: str, stdin: str | bytes | None = None) -> subprocess.CompletedProcess:
    """``dsuite ARGS`` run in this process: the same ``apps.cli.main`` the console script calls, with its own
    stdin, stdout, stderr, ``sys.argv``, the repository root as working folder and a root logger without
    handlers (so the command's logging setup prints its warnings on that stderr, as in a fresh process); the
    exit status, output and errors come back as :func:`run_dsuite` gives them (an uncaught exception: status 1
    and its traceback on stderr). Models an earlier call loaded stay loaded, which makes it far faster than a
    subprocess; use :func:`run_dsuite` where the process is the point (a signal, a kill, what another process
    sees)."""
    import io
    import logging
    import traceback

    from apps.cli import main

    data = stdin.encode("utf-8") if isinstance(stdin, str) else (stdin or b"")
    out, err = io.BytesIO(), io.BytesIO()
    streams = (
        io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        io.TextIOWrapper(err, encoding="utf-8", write_through=True),
    )
    saved, saved_argv, saved_cwd = (sys.stdin, sys.stdout, sys.stderr), sys.argv, os.getcwd()
    root = logging.getLogger()
    saved_logging = root.handlers[:], root.level
    status = 0
    try:
        root.handlers = []
        sys.stdin, sys.stdout, sys.stderr = streams
        sys.argv = ["dsuite", *args]
        os.chdir(REPO)
        main(list(args))
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except Exception:  # what the interpreter does with an uncaught exception
        traceback.print_exc(file=sys.stderr)
        status = 1
    finally:
        for stream in streams[1:]:
            stream.flush()
        (sys.stdin, sys.stdout, sys.stderr), sys.argv = saved, saved_argv
        root.handlers, root.level = saved_logging
        os.chdir(saved_cwd)
    decode = lambda raw: raw.getvalue().decode("utf-8", "replace")  # noqa: E731
    return subprocess.CompletedProcess(["dsuite", *args], status, decode(out), decode(err))


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
