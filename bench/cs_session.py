"""What a customer waits for in the support chat: the first token of a generated reply, end to end.

Ours: ``CustomerServiceSession`` as the app and ``dsuite cs chat --generate`` run it: intent, FAQ search,
state and escalation, then the reply streamed from the engine (int8 by default) with the system prompt in its
prefix cache and the continuous-batching scheduler. Baseline, same process and same messages: the same session
with the reply written by transformers' ``generate`` on the fp32 base without a prompt cache
(``core_model.generation.stream``, the path the session used before the engine).

The messages are real 30-token BANKING77 customer turns (``bench/decode.py:user_turns``); only those for
which the session writes a reply (no FAQ answer fits, no escalation) are timed, one fresh conversation
each. Prints one JSON line: first-token and whole-reply p50/p90 in milliseconds for each system.

    python bench/cs_session.py [--messages 40] [--max-new-tokens 96] [--policy int8] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed_turn(session, text: str) -> tuple[float, float, str]:
    """Seconds to the first yielded turn and to the finished one, and the turn's source."""
    start = time.perf_counter()
    turns = session.respond_stream(text)
    first = next(turns)
    first_at = time.perf_counter() - start
    for _ in turns:
        pass
    return first_at, time.perf_counter() - start, first.source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--messages", type=int, default=40, help="30-token messages tried (some get FAQ answers)"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=96, help="reply length cap (the session's default)"
    )
    parser.add_argument("--policy", default="int8", help="engine precision for ours (fp32, int8, int4)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    torch.set_num_threads(args.threads)
    from bench.decode import percentiles_ms, user_turns
    from core_model import load_base
    from core_model.generation import GenerationSettings, stream
    from domains.customer_service.session import CustomerServiceSession

    class PlainReplySession(CustomerServiceSession):
        """The baseline: the reply from transformers' generate, fp32, the whole prompt computed."""

        def _generated(self, text: str):
            settings = GenerationSettings(max_new_tokens=self.max_new_tokens)
            reply = ""
            for piece in stream(load_base(self.base), self.messages(text), settings):
                reply += piece
                yield reply

    texts = user_turns(load_base(None).tokenizer, args.messages + 2)
    warmup, texts = texts[:2], texts[2:]
    systems = {
        "ours": lambda: CustomerServiceSession(max_new_tokens=args.max_new_tokens, precision=args.policy),
        "baseline": lambda: PlainReplySession(max_new_tokens=args.max_new_tokens),
    }
    times: dict[str, dict[str, list[float]]] = {}
    generated = None
    for name, make in systems.items():
        for text in warmup:
            timed_turn(make(), text)
        first, whole, kept = [], [], []
        for text in texts:
            first_s, whole_s, source = timed_turn(make(), text)
            if source == "generated":
                first.append(first_s)
                whole.append(whole_s)
                kept.append(text)
        generated = generated if generated is not None else kept
        if kept != generated:
            raise SystemExit("The two sessions decided differently which messages get a generated reply.")
        times[name] = {"first": first, "whole": whole}
    ours_first = percentiles_ms(times["ours"]["first"])
    base_first = percentiles_ms(times["baseline"]["first"])
    ours_whole = percentiles_ms(times["ours"]["whole"])
    base_whole = percentiles_ms(times["baseline"]["whole"])
    record = {
        "bench": "cs_session_first_reply_token",
        "messages_tried": len(texts),
        "generated_replies_timed": len(generated),
        "user_turn_tokens": 30,
        "max_new_tokens": args.max_new_tokens,
        "threads": torch.get_num_threads(),
        "ours": f"CustomerServiceSession, engine {args.policy} + prefix cache + scheduler, streamed",
        "ours_first_token_p50_ms": ours_first["p50_ms"],
        "ours_first_token_p90_ms": ours_first["p90_ms"],
        "ours_whole_reply_p50_ms": ours_whole["p50_ms"],
        "baseline": "the same session, reply from transformers generate (fp32, no prompt cache), streamed",
        "baseline_first_token_p50_ms": base_first["p50_ms"],
        "baseline_first_token_p90_ms": base_first["p90_ms"],
        "baseline_whole_reply_p50_ms": base_whole["p50_ms"],
        "first_token_speedup": round(base_first["p50_ms"] / ours_first["p50_ms"], 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
