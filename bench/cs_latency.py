"""First-token latency of a 30-token customer turn after the cached customer-service system prompt.

Ours: ``core_model.engine.Engine`` with the system prompt in its prefix cache (int8 weights by default).
Baselines, same process and prompt: transformers ``generate``-style first forward over the whole prompt
(no cache), and transformers with the system prompt's ``past_key_values`` reused.
Prints one JSON line: p50/p90 in milliseconds for each, and the speed-up of ours over the uncached baseline.

    python bench/cs_latency.py [--repeats 15] [--policy int8] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

TURN = (
    "Hi, my order 4471923 from last week still says processing on the tracking page. "
    "Can you check where it is?"
)  # 30 tokens


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--policy", default="int8")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from core_model import load_base
    from core_model.engine import Engine
    from domains.customer_service.session import prompts

    system = prompts()["system"]
    base = load_base(None)
    tokenizer, model = base.tokenizer, base.model
    user_tokens = len(tokenizer(TURN, add_special_tokens=False)["input_ids"])

    prefix = tokenizer(
        tokenizer.apply_chat_template([{"role": "system", "content": system}], tokenize=False),
        add_special_tokens=False,
    )["input_ids"]
    full = tokenizer(
        tokenizer.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": TURN}],
            tokenize=False,
            add_generation_prompt=True,
        ),
        add_special_tokens=False,
    )["input_ids"]
    if full[: len(prefix)] != prefix:
        raise SystemExit("the chat template does not start the full prompt with the system turn's ids")
    ours, engine_error = [], None
    try:
        engine = Engine.from_base(base, policy=args.policy, max_batch=2, max_len=512)
        engine.cache_prefix(prefix)
        for _ in range(args.repeats + 2):
            ours.append(engine.first_token(full)[1])
        ours = ours[2:]
    except Exception as exc:  # the engine is optional here: report why and fall back to HF prefix reuse
        engine_error = f"{type(exc).__name__}: {exc}"[:200]

    ids = torch.tensor([full])
    prefix_ids = torch.tensor([prefix])
    no_cache, with_cache = [], []
    with torch.inference_mode():
        for _ in range(args.repeats + 2):
            start = time.perf_counter()
            model(input_ids=ids).logits[0, -1].argmax()
            no_cache.append(time.perf_counter() - start)
        cached = model(input_ids=prefix_ids, use_cache=True).past_key_values
        for _ in range(args.repeats + 2):
            past = copy.deepcopy(cached)
            start = time.perf_counter()
            model(input_ids=ids[:, len(prefix) :], past_key_values=past, use_cache=True).logits[
                0, -1
            ].argmax()
            with_cache.append(time.perf_counter() - start)
    no_cache, with_cache = no_cache[2:], with_cache[2:]
    ours_name = "engine_prefix_cache" if ours else "hf_past_key_values"
    ours = ours or with_cache
    record = {
        "bench": "cs_first_token",
        "user_turn_tokens": user_tokens,
        "system_prompt_tokens": len(prefix),
        "prompt_tokens": len(full),
        "threads": args.threads,
        "policy": args.policy if engine_error is None else "fp32",
        "ours": ours_name,
        "engine_error": engine_error,
        "ours_p50_ms": round(_pct(ours, 0.5), 1),
        "ours_p90_ms": round(_pct(ours, 0.9), 1),
        "baseline_hf_no_cache_p50_ms": round(_pct(no_cache, 0.5), 1),
        "baseline_hf_past_key_values_p50_ms": round(_pct(with_cache, 0.5), 1),
        "speedup_vs_no_cache": round(statistics.median(no_cache) / statistics.median(ours), 2),
        "target_ms": 200,
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
