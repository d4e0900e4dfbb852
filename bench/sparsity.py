"""Sparsity knobs of the converted base, measured: one JSON line per setting.

For each setting (attention mode and window/stride, routed experts per token before and after router
calibration, rope scaling) it prints held-out perplexity, relative FLOPs per token and greedy decode
tokens/s, side by side with the exact base (full attention, all experts). The held-out text is clinical
notes (MTSamples), dialogues (MultiWOZ test) and financial report paragraphs (TAT-QA test); calibration
used CodiEsp and Financial PhraseBank. A final line compares the exact base's decode and training speed
with transformers' LlamaForCausalLM on the same weights.

Usage: ``python bench/sparsity.py [--seq-len 512] [--rows-per-source 1] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from core_model import load_base
from core_model.calibrate import CALIBRATION_DIR, CALIBRATION_FILE, load_calibration
from eval.data.paths import dataset_dir, read_json, read_jsonl


def held_out_texts() -> dict[str, list[str]]:
    """Held-out text per source (never used for calibration)."""
    notes = [r["transcription"] for r in read_jsonl(dataset_dir("medical/mtsamples") / "mtsamples.jsonl")
             if len(r.get("transcription") or "") > 3000][:20]
    dialogues = []
    for r in read_jsonl(dataset_dir("dialog/multiwoz") / "test.jsonl"):
        dialogues.append("\n".join(f"{t['speaker'].title()}: {t['utterance']}" for t in r["turns"]))
        if len(dialogues) >= 40:
            break
    reports = []
    for item in read_json(dataset_dir("finance/tatqa_test") / "tatqa_dataset_test_gold.json")[:40]:
        reports.append("\n".join(p["text"] for p in item["paragraphs"]))
    return {"clinical": notes, "dialogue": ["\n\n".join(dialogues)], "finance": ["\n\n".join(reports)]}


def token_rows(tokenizer, texts: dict[str, list[str]], seq_len: int, rows: int) -> torch.Tensor:
    out = []
    for pieces in texts.values():
        ids = tokenizer("\n\n".join(pieces))["input_ids"]
        out.extend(ids[i * seq_len:(i + 1) * seq_len] for i in range(min(rows, len(ids) // seq_len)))
    return torch.tensor(out)


@torch.no_grad()
def perplexity(model, rows: torch.Tensor) -> float:
    nll, count = 0.0, 0
    for row in rows:
        out = model(row[None], labels=row[None], use_cache=False)
        nll += out.loss.item() * (row.numel() - 1)
        count += row.numel() - 1
    return math.exp(nll / count)


@torch.no_grad()
def decode_speed(model, tokenizer, new_tokens: int) -> float:
    enc = tokenizer(["Describe the treatment of type 2 diabetes."], return_tensors="pt")
    settings = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, temperature=None,
                    top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
    model.generate(**enc, max_new_tokens=2, do_sample=False, pad_token_id=tokenizer.pad_token_id)  # warm
    start = time.perf_counter()
    model.generate(**enc, **settings)
    return new_tokens / (time.perf_counter() - start)


def flops_per_token(config, context: int) -> float:
    """Multiply-adds x 2 per token: linear layers used plus attention scores over the keys attended."""
    d, hd = config.hidden_size, config.head_dim
    attn_lin = d * hd * (2 * config.num_attention_heads + 2 * config.num_key_value_heads)
    total = 0.0
    for i in range(config.num_hidden_layers):
        if config.is_moe_layer(i):
            inter = config.moe_intermediate_size * (config.n_shared_experts + config.active_experts)
            router = 0 if config.all_experts_active else d * config.n_routed_experts
        else:
            inter, router = config.intermediate_size, 0
        keys = attended_keys(config, context)
        branches = 2 if config.attention_mode == "hybrid" else 1
        total += attn_lin + 3 * d * inter + router + 2 * config.num_attention_heads * hd * keys * branches
    return 2 * (total + d * config.vocab_size)


def attended_keys(config, context: int) -> float:
    """Average keys a query attends over positions 0..context-1."""
    pos = torch.arange(context, dtype=torch.float64)
    full = pos + 1
    if config.attention_mode == "full":
        return float(full.mean())
    sliding = torch.clamp(full, max=config.window)
    strided = torch.floor(pos / config.stride) + 1 + torch.clamp(pos + 1, max=config.sink_tokens)
    strided = torch.minimum(strided, full)
    if config.attention_mode == "sliding":
        return float(sliding.mean())
    if config.attention_mode == "strided":
        return float(strided.mean())
    return float((sliding + strided).mean() / 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--rows-per-source", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--quick", action="store_true", help="only a few settings")
    args = parser.parse_args()
    torch.set_num_threads(2)
    base = load_base(None)
    model, tok = base.model, base.tokenizer
    rows = token_rows(tok, held_out_texts(), args.seq_len, args.rows_per_source)
    exact = {k: v.detach().clone() for k, v in model.named_parameters() if k.endswith(("mlp.gate.weight",
             "attn_gate.weight", "attn_gate.bias"))}
    has_calibration = (base.path / CALIBRATION_DIR / CALIBRATION_FILE).is_file()

    def use(calibrated: bool) -> None:
        if calibrated:
            load_calibration(model, base.path)
        else:
            params = dict(model.named_parameters())
            with torch.no_grad():
                for key, value in exact.items():
                    params[key].copy_(value)

    reference = {}
    exact_flops = flops_per_token(model.config, args.seq_len)  # loaded as stored: the exact setting
    settings = [dict()]
    settings += [dict(attention_mode="sliding", window=w) for w in (64, 256)]
    settings += [dict(attention_mode="strided", stride=s, sink_tokens=4) for s in (4, 16)]
    settings += [dict(attention_mode="hybrid", window=64, stride=16, calibrated=False)]
    settings += [dict(experts_per_token=k, calibrated=False) for k in (8, 4)]
    settings += [dict(rope_scaling=m, rope_factor=f) for f in (2.0, 4.0) for m in ("linear", "ntk", "yarn")]
    settings += [dict(attention_mode="hybrid", window=64, stride=16, calibrated=True)]
    settings += [dict(experts_per_token=k, calibrated=True) for k in (8, 4)]
    if args.quick:
        settings = settings[:1] + [s for s in settings if s.get("calibrated")]
    for setting in settings:
        knobs = {k: v for k, v in setting.items() if k != "calibrated"}
        calibrated = bool(setting.get("calibrated"))
        if calibrated and not has_calibration:
            print(json.dumps({"setting": setting, "skipped": "no calibration; run `dsuite base calibrate`"}))
            continue
        use(calibrated)
        defaults = dict(attention_mode="full", experts_per_token=None, rope_scaling="none", rope_factor=1.0,
                        window=256, stride=64, sink_tokens=4)
        model.configure(**{**defaults, **knobs})
        ppl = perplexity(model, rows)
        record = {
            "setting": setting or {"exact": True},
            "perplexity": round(ppl, 3),
            "relative_flops_per_token": round(flops_per_token(model.config, args.seq_len) / exact_flops, 3),
            "decode_tokens_per_s": round(decode_speed(model, tok, args.new_tokens), 2),
        }
        if not setting:
            exact_speed = record["decode_tokens_per_s"]
            reference = {"exact_perplexity": record["perplexity"], "exact_tokens_per_s": exact_speed}
        record.update(reference)
        record["perplexity_ratio"] = round(ppl / reference["exact_perplexity"], 3)
        record.update({"eval_tokens": int(rows.numel()), "seq_len": args.seq_len})
        print(json.dumps(record), flush=True)
    use(False)
    model.configure(attention_mode="full", experts_per_token=None, rope_scaling="none", rope_factor=1.0)
    print(json.dumps(speed_vs_llama(model, tok, args.new_tokens)), flush=True)


def speed_vs_llama(model, tok, new_tokens: int) -> dict:
    """Greedy decode tokens/s (batch 1) and one forward+backward step (4 x 256 tokens), ours vs Llama."""
    from transformers import AutoModelForCausalLM

    from core_model.base import embedded_hf_dir

    llama = AutoModelForCausalLM.from_pretrained(embedded_hf_dir(), dtype=torch.float32).eval()
    batch = torch.randint(0, model.config.vocab_size, (4, 256), generator=torch.Generator().manual_seed(0))

    def step(m) -> float:
        m.train()
        m(batch, labels=batch, use_cache=False).loss.backward()  # warm
        m.zero_grad()
        start = time.perf_counter()
        m(batch, labels=batch, use_cache=False).loss.backward()
        elapsed = time.perf_counter() - start
        m.zero_grad()
        m.eval()
        return elapsed

    ours_dec, ref_dec = decode_speed(model, tok, new_tokens), decode_speed(llama, tok, new_tokens)
    ours_step, ref_step = step(model), step(llama)
    return {
        "setting": "speed_vs_llama",
        "decode_tokens_per_s": round(ours_dec, 2), "llama_decode_tokens_per_s": round(ref_dec, 2),
        "decode_ratio": round(ours_dec / ref_dec, 3),
        "train_step_s": round(ours_step, 3), "llama_train_step_s": round(ref_step, 3),
        "train_step_ratio": round(ours_step / ref_step, 3),
    }


if __name__ == "__main__":
    main()
