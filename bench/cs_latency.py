"""First-token latency of a 30-token customer turn after the cached customer-service system prompt.

Ours: ``core_model.engine.Engine`` with the system prompt in its prefix cache (int8 weights by default), so
only the user turn and the assistant header are computed. Baselines, same process and same prompts:
transformers' forward over the whole prompt with no cache (``logits_to_keep=1``, as ``generate`` does for
its first token), and transformers with the system prompt's ``past_key_values`` reused.

Every trial is a distinct real customer message of exactly 30 tokens (BANKING77, counted with the base's
tokenizer; see ``bench/decode.py:user_turns``); two other messages warm each system up first.
Prints one JSON line: p50/p90 in milliseconds for each, the token counts, and the speed-up of ours over the
uncached baseline.

    python bench/cs_latency.py [--turns 24] [--policy int8] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=24, help="timed trials, one distinct turn each (>= 20)")
    parser.add_argument("--policy", default="int8", help="engine precision policy (fp32, int8, int4, mixed)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.turns < 20:
        parser.error(f"--turns must be at least 20 for a p50 worth reporting, got {args.turns}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    torch.set_num_threads(args.threads)
    from bench.decode import TTFT_TARGET_MS, engine_ttft, percentiles_ms, ttft_prompts
    from core_model import load_base
    from core_model.engine import Engine
    from domains.customer_service.session import prompts

    system = prompts()["system"]
    base = load_base(None)
    tokenizer, model = base.tokenizer, base.model
    turns = ttft_prompts(tokenizer, system, args.turns)
    prefix = turns["system_ids"]

    ours, engine_error = None, None
    try:
        engine = Engine.from_base(base, policy=args.policy, max_batch=2, max_len=512)
        ours = engine_ttft(engine, turns)
        del engine
    except Exception as exc:  # the engine is optional here: report why and fall back to HF prefix reuse
        engine_error = f"{type(exc).__name__}: {exc}"[:200]

    def timed(run, ids: list[int]) -> float:
        start = time.perf_counter()
        run(ids)
        return time.perf_counter() - start

    def no_cache(ids: list[int]) -> None:
        model(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1].argmax()

    with torch.inference_mode():
        cached = model(input_ids=torch.tensor([prefix]), use_cache=True).cache

        def with_cache(ids: list[int], past) -> None:
            model(input_ids=torch.tensor([ids[len(prefix):]]), cache=past, use_cache=True,
                  logits_to_keep=1).logits[0, -1].argmax()

        for ids in turns["warmup"]:
            no_cache(ids)
            with_cache(ids, copy.deepcopy(cached))
        uncached = percentiles_ms([timed(no_cache, ids) for ids in turns["timed"]])
        reuse = []
        for ids in turns["timed"]:
            past = copy.deepcopy(cached)  # outside the timing: the cache grows with every use
            reuse.append(timed(lambda x, p=past: with_cache(x, p), ids))
        reuse = percentiles_ms(reuse)
    ours_p50 = ours["ttft_p50_ms"] if ours else reuse["p50_ms"]
    record = {
        "bench": "cs_first_token",
        "user_turn_tokens": turns["user_tokens"],
        "computed_tokens_after_system_prompt": turns["computed_tokens"],
        "system_prompt_tokens": len(prefix),
        "trials": len(turns["timed"]),
        "threads": torch.get_num_threads(),
        "policy": args.policy if engine_error is None else "fp32",
        "ours": "engine_prefix_cache" if ours else "hf_past_key_values",
        "engine_error": engine_error,
        "ours_p50_ms": ours_p50,
        "ours_p90_ms": ours["ttft_p90_ms"] if ours else reuse["p90_ms"],
        "ours_no_prefix_cache_p50_ms": ours["ttft_no_prefix_cache_p50_ms"] if ours else None,
        "baseline": "transformers forward of the base (DSuiteForCausalLM, fp32), whole prompt, no cache",
        "baseline_hf_no_cache_p50_ms": uncached["p50_ms"],
        "baseline_hf_no_cache_p90_ms": uncached["p90_ms"],
        "baseline_hf_past_key_values_p50_ms": reuse["p50_ms"],
        "speedup_vs_no_cache": round(uncached["p50_ms"] / ours_p50, 2),
        "target_ms": TTFT_TARGET_MS,
        "under_target": ours_p50 < TTFT_TARGET_MS,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
