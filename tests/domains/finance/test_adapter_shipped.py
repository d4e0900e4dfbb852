"""The finance adapter ships in the repository and installs itself into a registry that lacks it."""

import json

from adapters import AdapterManager, GenerationRequest, Registry
from adapters.shipped import shipped_adapters
from domains.finance.sentiment import LABELS, SYSTEM_PROMPT, sentiment_prompt
from domains.finance.training import ADAPTER_NAME, SHIPPED_ADAPTER


def test_a_fresh_registry_serves_the_shipped_finance_adapter(embedded_base, tmp_path):
    assert shipped_adapters()[ADAPTER_NAME] == SHIPPED_ADAPTER
    shipped = json.loads((SHIPPED_ADAPTER / "meta.json").read_text())
    assert shipped["base_fingerprint"] == embedded_base.fingerprint
    assert shipped["retrain"] == "`dsuite finance train-adapter --base PATH`"
    registry = Registry(tmp_path / "registry")
    manager = AdapterManager(embedded_base, registry)
    try:
        sentences = [
            "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
            "The company's net sales fell by 30% and it swung to an operating loss.",
        ]
        requests = [
            GenerationRequest(
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": sentiment_prompt(s)},
                ],
                adapter=ADAPTER_NAME,
            )
            for s in sentences
        ]
        scores = manager.score_batch(requests, [LABELS] * len(requests))
        assert [LABELS[max(range(3), key=row.__getitem__)] for row in scores] == ["positive", "negative"]
        assert registry.versions(ADAPTER_NAME) == [1]
        assert "Financial PhraseBank" in registry.show(ADAPTER_NAME)["data_card"]
    finally:
        manager.close()
