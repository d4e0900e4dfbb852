"""Where the suite keeps what it writes outside the repository (the converted base, registries)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "DSUITE_HOME"
BASE_ENV = "DSUITE_BASE"
REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_DATA = REPO_ROOT / "data"  # small data the project writes itself, shipped adapters included


def dsuite_home() -> Path:
    """The suite's cache folder: ``$DSUITE_HOME`` or ``~/.cache/domainsuite``."""
    root = os.environ.get(HOME_ENV)
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "domainsuite"
    path.mkdir(parents=True, exist_ok=True)
    return path


def set_offline() -> None:
    """Make every Hugging Face library work offline: nothing is fetched from a model hub. Also quiet: no
    "Loading weights" bar each time a model is read from disk (``HF_HUB_DISABLE_PROGRESS_BARS=0`` brings it
    back); the suite's own progress bars stay."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
