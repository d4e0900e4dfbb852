"""Benchmark the adapter manager: one batch of 8 requests on 8 different adapters in one pass, vs the same
batch on one adapter, vs swapping adapters request by request, vs merged weights; memory per loaded adapter;
time to hot-add an adapter. Prints one JSON line.

Run: ``.venv/bin/python bench/adapters.py [--new-tokens 24] [--repeats 2]`` (uses the default base).
The adapters are rank-16 LoRAs on q_proj/v_proj with random non-zero weights (throughput does not depend
on what they learned), registered in a temporary registry.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

# run as a script, this file's folder comes first on sys.path and its name would shadow the `adapters` package
sys.path[0] = str(Path(__file__).resolve().parents[1])

PROMPTS = [
    "What is a bond yield?",
    "My card has not arrived yet.",
    "Is the patient's fever negated here?",
    "How is the traffic downtown?",
    "Summarise the quarterly results.",
    "I want to change my PIN.",
    "Explain what an index fund is.",
    "Book a table for two tonight.",
]


def random_lora(model, seed: int, rank: int = 16, targets=("q_proj", "v_proj")):
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in model.named_modules():
        if name.split(".")[-1] in targets:
            out_f, in_f = module.weight.shape
            tensors[f"base_model.model.{name}.lora_A.weight"] = torch.randn(rank, in_f, generator=gen) * 0.02
            tensors[f"base_model.model.{name}.lora_B.weight"] = torch.randn(out_f, rank, generator=gen) * 0.02
    return tensors, {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": list(targets)}


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None, help="base checkpoint folder (default: the embedded base)")
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)

    from adapters.manager import AdapterManager
    from adapters.registry import Registry
    from adapters.requests import GenerationRequest
    from core_model import load_base

    base = load_base(args.base)
    n = args.new_tokens
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(tmp)
        for i in range(9):
            tensors, config = random_lora(base.model, seed=i)
            registry.register(f"a{i}", tensors, config, base_fingerprint=base.fingerprint)
        manager = AdapterManager(base, registry, max_loaded=16)
        for i in range(8):
            manager.add(f"a{i}")

        def batch(adapters):
            return [
                GenerationRequest(prompt=p, adapter=a, max_new_tokens=n, min_new_tokens=n)
                for p, a in zip(PROMPTS, adapters, strict=True)
            ]

        mixed_requests = batch([f"a{i}" for i in range(8)])
        single_requests = batch(["a0"] * 8)
        base_requests = batch([None] * 8)
        manager.generate(batch(["a0"] * 8)[:2])  # warm-up
        tokens = 8 * n
        # interleaved rounds, best of each: a transient load on the machine hits every row alike
        t_mixed = t_single = t_base = float("inf")
        for _ in range(args.repeats):
            t_mixed = min(t_mixed, timed(lambda: manager.generate(mixed_requests), 1))
            t_single = min(t_single, timed(lambda: manager.generate(single_requests), 1))
            t_base = min(t_base, timed(lambda: manager.generate(base_requests), 1))

        swapper = AdapterManager(
            base, registry, max_loaded=1
        )  # loads each request's adapter, evicting the last

        def swap_each():
            for request in mixed_requests:
                swapper.generate([request])

        t_swap = timed(swap_each, 1)
        swapper.close()

        # merged weights: adapter a0 folded into a copy of the base, plain batched generation
        _, tensors, config = registry.load("a0", base.fingerprint)
        merged = copy.deepcopy(base.model)
        modules = dict(merged.named_modules())
        scale = config["lora_alpha"] / config["r"]
        with torch.no_grad():
            for key, a in tensors.items():
                if key.endswith("lora_A.weight"):
                    name = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
                    b = tensors[key.replace("lora_A", "lora_B")]
                    modules[name].weight += scale * (b @ a)
        merged_manager = AdapterManager(
            type(base)(merged, base.tokenizer, base.fingerprint, base.path, "merged"), registry
        )
        t_merged = timed(lambda: merged_manager.generate(base_requests), args.repeats)
        merged_manager.close()

        per_adapter = [row["bytes"] for row in manager.loaded()]
        start = time.perf_counter()
        manager.add("a8")
        t_add = time.perf_counter() - start
        start = time.perf_counter()
        manager.generate([GenerationRequest(prompt=PROMPTS[0], adapter="a8", max_new_tokens=1)])
        t_first = time.perf_counter() - start
        manager.close()

    tps = {
        k: tokens / v
        for k, v in {
            "mixed_8_adapters": t_mixed,
            "single_adapter": t_single,
            "bare_base": t_base,
            "swap_per_request": t_swap,
            "merged_weights": t_merged,
        }.items()
    }
    print(
        json.dumps(
            {
                "bench": "adapters",
                "base": base.fingerprint,
                "architecture": type(base.model).__name__,
                "batch": 8,
                "new_tokens_per_request": n,
                "lora": "r16 q_proj,v_proj",
                "tokens_per_s": {k: round(v, 1) for k, v in tps.items()},
                "mixed_over_single": round(tps["mixed_8_adapters"] / tps["single_adapter"], 3),
                "mixed_over_swap": round(tps["mixed_8_adapters"] / tps["swap_per_request"], 2),
                "mixed_over_merged": round(tps["mixed_8_adapters"] / tps["merged_weights"], 3),
                "adapter_memory_mb": round(sum(per_adapter) / len(per_adapter) / 1e6, 2),
                "hot_add_s": round(t_add, 3),
                "hot_add_first_token_s": round(t_first, 3),
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
