"""A running manager serves an adapter that another process registered after it started (no restart)."""

from __future__ import annotations

import json
import os
import subprocess

from safetensors.torch import save_file

from adapters.manager import AdapterManager
from adapters.requests import GenerationRequest
from tests.adapters.conftest import random_lora
from tests.conftest import dsuite_command


def test_adapter_registered_by_another_process_is_served(tiny_base, registry, tmp_path):
    manager = AdapterManager(tiny_base, registry)
    request = GenerationRequest(prompt="Tell me something", adapter=None, max_new_tokens=8)
    bare = manager.generate([request])[0]  # the manager is serving before the adapter exists

    folder = tmp_path / "late_adapter"
    folder.mkdir()
    tensors, config = random_lora(tiny_base, seed=5)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(config))
    env = {**os.environ, "DSUITE_ADAPTERS": str(registry.root)}
    done = subprocess.run(
        dsuite_command(
            "adapters",
            "register",
            "--name",
            "late",
            "--from",
            str(folder),
            "--base",
            str(tiny_base.path),
            "--json",
        ),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["adapter"] == "late@1"

    answer = manager.generate(
        [GenerationRequest(prompt="Tell me something", adapter="late", max_new_tokens=8)]
    )[0]
    assert answer.adapter == "late@1"
    assert answer.token_ids != bare.token_ids  # the new adapter really answered
    manager.close()
