"""On the real embedded base: a mixed-adapter batch gives the same greedy tokens as each request alone."""

from __future__ import annotations

import pytest

from adapters.manager import AdapterManager
from adapters.requests import GenerationRequest
from tests.adapters.conftest import random_lora


@pytest.mark.slow
def test_mixed_batch_golden_on_embedded_base(embedded_base, registry):
    for i in range(3):
        tensors, config = random_lora(embedded_base, seed=i, rank=8, scale=0.08)
        registry.register(f"g{i}", tensors, config, base_fingerprint=embedded_base.fingerprint)
    manager = AdapterManager(embedded_base, registry)
    requests = [
        GenerationRequest(prompt=p, adapter=a, max_new_tokens=8)
        for p, a in [
            ("What is a bond?", "g0"),
            ("Name a fruit.", "g1"),
            ("Say hi.", None),
            ("Is 7 a prime number?", "g2"),
        ]
    ]
    batch = manager.generate(requests)
    alone = [manager.generate([r])[0] for r in requests]
    assert [b.token_ids for b in batch] == [a.token_ids for a in alone]
    assert all(b.new_tokens > 0 for b in batch)
    # the adapters change the answer to the same prompt
    same = manager.generate(
        [GenerationRequest(prompt="What is a bond?", adapter=a, max_new_tokens=8) for a in (None, "g0")]
    )
    assert same[0].token_ids != same[1].token_ids
    manager.close()
