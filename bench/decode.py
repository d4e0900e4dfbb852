"""Decode benchmark: transformers eager fp32 (baseline) vs our engine (fp32, int8, int4, mixed) vs llama.cpp.

Same prompts (bench/decode_prompts.json), greedy, 128 new tokens (end-of-sequence ignored so every row
decodes the same number of tokens), 2 threads. Each row runs in its own process (so peak RSS is per row).
Figures per row: batch-1 tokens/s, batch-8 and batch-32 aggregate tokens/s, time to first token, peak RSS,
weights size on disk, perplexity on held-out MTSamples notes, and agreement of greedy outputs with our fp32
row.

Time to first token (TTFT): p50/p90 over ``--ttft-runs`` (default 24) distinct customer messages of exactly
30 tokens (BANKING77, counted with the base's tokenizer), each chat-formatted after the ~220-token system
prompt of ``decode_prompts.json``. Ours keeps the system turn in the prefix cache, so it computes the user
turn and the assistant header (39 tokens); the transformers baseline runs the whole prompt with no cache
(``logits_to_keep=1``, as ``generate`` does for its first token). Both appear in the same JSON line.

    .venv/bin/python bench/decode.py                 # all rows, one JSON line on stdout
    .venv/bin/python bench/decode.py --rows hf,int4 --batches 8
    .venv/bin/python bench/decode.py --ttft-only --rows hf,fp32,int8,int4,mixed   # TTFT only (fast)

llama.cpp needs the optional ``bench`` extra (``pip install llama-cpp-python``); without it its row says
"not installed".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PROMPTS = Path(__file__).with_name("decode_prompts.json")
ENGINE_ROWS = {"fp32": "fp32", "int8": "int8", "int4": "int4", "int4-g64": "int4-g64", "mixed": "mixed"}
DEFAULT_ROWS = "hf,fp32,int8,int4,int4-g64,mixed,llama.cpp"
logger = logging.getLogger("bench.decode")


def _setup(threads: int):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(threads)
    return torch


def _data(tokenizer, n_ppl: int, ppl_tokens: int):
    spec = json.loads(PROMPTS.read_text())
    from eval.data.paths import dataset_dir, read_jsonl

    notes = list(read_jsonl(dataset_dir("medical/mtsamples") / "mtsamples.jsonl"))
    texts = [n["transcription"] for n in notes[-n_ppl:]]  # held out: the last notes of the file
    ppl_ids = [tokenizer(t)["input_ids"][:ppl_tokens] for t in texts]
    return spec, ppl_ids


def _chat(tokenizer, user: str, system: str | None = None) -> list[int]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _system_ids(tokenizer, system: str) -> list[int]:
    text = tokenizer.apply_chat_template([{"role": "system", "content": system}], tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


TURN_TOKENS = 30  # the user turn of the TTFT target
TTFT_TARGET_MS = 200  # p50 time to first token on 2 cores, after the cached system prompt
PPL_TOLERANCE = 0.03  # a row "keeps quality" when its perplexity is within 3% of fp32


def user_turns(tokenizer, n: int, tokens: int = TURN_TOKENS) -> list[str]:
    """``n`` distinct real customer messages of exactly ``tokens`` tokens (tokenizer count, no specials).

    Taken in file order from BANKING77 (test, then train), unedited, so every run times the same messages.
    """
    import csv

    from eval.data.paths import dataset_dir

    folder = dataset_dir("dialog/banking77")
    found: list[str] = []
    for name in ("test.csv", "train.csv"):
        with open(folder / name, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                text = row["text"].strip()
                if text in found or len(tokenizer(text, add_special_tokens=False)["input_ids"]) != tokens:
                    continue
                found.append(text)
                if len(found) == n:
                    return found
    raise SystemExit(f"BANKING77 has only {len(found)} distinct {tokens}-token messages; ask for fewer.")


def ttft_prompts(tokenizer, system: str, n: int, warmup: int = 2) -> dict:
    """Chat prompts (system turn + one user turn) for TTFT: ``n`` timed and ``warmup`` other ones.

    Returns ``{"system_ids", "timed", "warmup", "user_tokens", "computed_tokens"}``; computed tokens are
    the prompt tokens after the system turn (user turn plus chat markup and the assistant header).
    """
    texts = user_turns(tokenizer, n + warmup)
    system_ids = _system_ids(tokenizer, system)
    prompts = [_chat(tokenizer, text, system) for text in texts]
    for ids in prompts:
        if ids[:len(system_ids)] != system_ids:
            raise SystemExit("The chat template does not start a prompt with the system turn's token ids.")
    computed = sorted({len(ids) - len(system_ids) for ids in prompts})
    return {"system_ids": system_ids, "timed": prompts[:n], "warmup": prompts[n:],
            "user_tokens": TURN_TOKENS, "computed_tokens": computed[0] if len(computed) == 1 else computed}


def percentiles_ms(seconds: list[float]) -> dict:
    """p50 (median) and p90 (nearest rank) in milliseconds, and the trial count."""
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"p50_ms": round(1000 * statistics.median(ordered), 1), "p90_ms": round(1000 * p90, 1),
            "trials": len(ordered)}


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _row_start(row: dict, tok, args, ttft) -> tuple | None:
    """A row's common start: first-token latency into ``row`` (``ttft(turns)``). In --ttft-only mode also
    the RSS, and None (the row is done); else ``(spec, ppl_ids, prompts)`` for throughput and perplexity."""
    spec = json.loads(PROMPTS.read_text())
    row.update(ttft(ttft_prompts(tok, spec["system"], args.ttft_runs)))
    if args.ttft_only:
        row["rss_mb"] = _rss_mb()
        return None
    spec, ppl_ids = _data(tok, args.ppl_docs, args.ppl_tokens)
    return spec, ppl_ids, [_chat(tok, p) for p in spec["prompts"]]


def run_engine_row(args, policy: str) -> dict:
    torch = _setup(args.threads)
    from core_model import load_base
    from core_model.engine import Engine

    base = load_base(None)
    tok = base.tokenizer
    max_batch = 2 if args.ttft_only else max([1, *args.batches])
    engine = Engine.from_base(base, policy=policy, max_batch=max_batch, max_len=320)
    base.model = None  # drop our reference; the engine holds its own weights
    import gc

    gc.collect()
    row: dict = {"policy": policy, "threads": torch.get_num_threads(),
                 "weights_mb": round(engine.nbytes() / 1e6, 1)}
    started = _row_start(row, tok, args, lambda turns: engine_ttft(engine, turns))
    if started is None:
        return row
    spec, ppl_ids, prompts = started
    with tempfile.TemporaryDirectory() as tmp:
        from safetensors.torch import save_file

        tensors = {"embed": engine.embed, "norm": engine.final_norm}
        for name, proj in [("head", engine.head)] + [
            (f"{i}.{part}", getattr(b, part)) for i, b in enumerate(engine.blocks)
            for part in ("qkv", "o", "gate_up", "down")
        ]:
            for j, t in enumerate(proj.tensors):
                tensors[f"{name}.{j}"] = t
        save_file(tensors, f"{tmp}/w.safetensors")
        row["disk_mb"] = round(os.path.getsize(f"{tmp}/w.safetensors") / 1e6, 1)
    engine.generate([prompts[0]], max_new_tokens=8, stop_at_eos=False)  # warm-up (threads, caches)
    t0 = time.perf_counter()
    out1 = engine.generate([prompts[0]], max_new_tokens=args.new_tokens, stop_at_eos=False)
    row["b1_tok_s"] = round(args.new_tokens / (time.perf_counter() - t0), 2)
    outputs = {"b1": out1}
    for b in args.batches:
        t0 = time.perf_counter()
        out = engine.generate(prompts[:b], max_new_tokens=args.new_tokens, stop_at_eos=False)
        row[f"b{b}_tok_s"] = round(b * args.new_tokens / (time.perf_counter() - t0), 2)
        outputs[f"b{b}"] = out
    row["ppl"] = round(engine.perplexity(ppl_ids), 3)
    row["rss_mb"] = _rss_mb()
    row["_outputs"] = outputs
    del torch
    return row


def engine_ttft(engine, prompts: dict, cold_runs: int = 5) -> dict:
    """TTFT of ``engine.first_token`` after ``cache_prefix(system)``, plus a few runs with no prefix cache."""
    engine.cache_prefix(prompts["system_ids"])
    for ids in prompts["warmup"]:
        engine.first_token(ids)
    hits = engine.prefixes.hits
    warm = [engine.first_token(ids)[1] for ids in prompts["timed"]]
    if engine.prefixes.hits - hits != len(warm):
        raise SystemExit("A timed request missed the prefix cache; the TTFT figures would be wrong.")
    engine.prefixes.clear()
    cold = [engine.first_token(ids)[1] for ids in prompts["timed"][:cold_runs]]
    p = percentiles_ms(warm)
    return {"ttft_p50_ms": p["p50_ms"], "ttft_p90_ms": p["p90_ms"], "ttft_trials": p["trials"],
            "ttft_system_tokens": len(prompts["system_ids"]), "ttft_user_tokens": prompts["user_tokens"],
            "ttft_computed_tokens": prompts["computed_tokens"],
            "ttft_no_prefix_cache_p50_ms": percentiles_ms(cold)["p50_ms"]}


def hf_ttft(model, prompts: dict) -> dict:
    """TTFT of a transformers model with no cache: one forward over the whole prompt, last logits, argmax."""
    import torch

    def once(ids: list[int]) -> float:
        t0 = time.perf_counter()
        model(torch.tensor([ids]), logits_to_keep=1).logits[0, -1].argmax()
        return time.perf_counter() - t0

    with torch.inference_mode():
        for ids in prompts["warmup"]:
            once(ids)
        p = percentiles_ms([once(ids) for ids in prompts["timed"]])
    lengths = sorted({len(ids) for ids in prompts["timed"]})
    return {"ttft_uncached_p50_ms": p["p50_ms"], "ttft_uncached_p90_ms": p["p90_ms"],
            "ttft_trials": p["trials"], "ttft_system_tokens": len(prompts["system_ids"]),
            "ttft_user_tokens": prompts["user_tokens"],
            "ttft_computed_tokens": lengths[0] if len(lengths) == 1 else lengths}  # the whole prompt


def run_hf_row(args) -> dict:
    torch = _setup(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core_model.embedded import find_embedded_gguf

    gguf = find_embedded_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    row: dict = {"policy": "transformers fp32 (sdpa), generate()", "threads": torch.get_num_threads()}
    started = _row_start(row, tok, args, lambda turns: hf_ttft(model, turns))
    if started is None:
        return row
    spec, ppl_ids, prompts = started
    n = args.new_tokens
    kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=tok.eos_token_id)
    with torch.inference_mode():
        model.generate(torch.tensor([prompts[0]]), **{**kw, "max_new_tokens": 8, "min_new_tokens": 8})
        t0 = time.perf_counter()
        out = model.generate(torch.tensor([prompts[0]]), **kw)
        row["b1_tok_s"] = round(n / (time.perf_counter() - t0), 2)
        outputs = {"b1": [out[0, len(prompts[0]):].tolist()]}
        for b in args.hf_batches:
            width = max(len(p) for p in prompts[:b])
            ids = torch.tensor([[tok.eos_token_id] * (width - len(p)) + p for p in prompts[:b]])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts[:b]])
            t0 = time.perf_counter()
            out = model.generate(ids, attention_mask=mask, **kw)
            row[f"b{b}_tok_s"] = round(b * n / (time.perf_counter() - t0), 2)
            outputs[f"b{b}"] = out[:, width:].tolist()
        nll, count = 0.0, 0
        for ids in ppl_ids:
            logits = model(torch.tensor([ids])).logits[0]
            target = torch.tensor(ids[1:])
            nll += torch.nn.functional.cross_entropy(logits[:-1], target, reduction="sum").item()
            count += len(ids) - 1
        row["ppl"] = round(float(torch.exp(torch.tensor(nll / count))), 3)
    row["rss_mb"] = _rss_mb()
    row["_outputs"] = outputs
    return row


def run_llamacpp_row(args) -> dict:
    if args.ttft_only:
        return {"status": "skipped (--ttft-only)"}
    try:
        from llama_cpp import Llama
    except ImportError:
        return {"status": "not installed (pip install llama-cpp-python, the optional 'bench' extra)"}
    _setup(args.threads)
    from transformers import AutoTokenizer

    from core_model.embedded import find_embedded_gguf

    gguf = find_embedded_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    spec = json.loads(PROMPTS.read_text())
    prompt = _chat(tok, spec["prompts"][0])
    llm = Llama(model_path=str(gguf), n_threads=args.threads, n_threads_batch=args.threads, n_ctx=1024,
                n_batch=512, verbose=False)
    no_eos = {tok.eos_token_id: -1e9}
    llm.create_completion(prompt, max_tokens=8, temperature=0.0, logit_bias=no_eos)
    llm.reset()
    # b1_tok_s as in our rows (new tokens / time with the prompt); decode_only_tok_s from the first token on
    t0 = time.perf_counter()
    first, generated = None, 0
    stream = llm.create_completion(prompt, max_tokens=args.new_tokens, temperature=0.0, logit_bias=no_eos,
                                   stream=True)
    for _chunk in stream:
        generated += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return {"policy": "llama.cpp Q4_1 GGUF (token_embd Q8_0)",
            "b1_tok_s": round(generated / (end - t0), 2),
            "decode_only_tok_s": round((generated - 1) / (end - first), 2) if generated > 1 else None,
            "ttft_ms": round((first - t0) * 1000, 1),
            "new_tokens": generated, "threads": args.threads, "rss_mb": _rss_mb(),
            "disk_mb": round(gguf.stat().st_size / 1e6, 1)}


def run_interleaved(args) -> dict:
    """All systems in one process, decode steps interleaved round-robin, min-of-N per step.

    On a shared, oversubscribed machine the fastest of many short samples approximates the quiet-machine
    figure, and interleaving exposes every system to the same interference.
    """
    torch = _setup(args.threads)
    from transformers import AutoModelForCausalLM

    from core_model import load_base
    from core_model.embedded import find_embedded_gguf
    from core_model.engine import Engine

    base = load_base(None)
    tok = base.tokenizer
    spec = json.loads(PROMPTS.read_text())
    prompts = [_chat(tok, p) for p in spec["prompts"]]
    gguf = find_embedded_gguf()
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    engines = {name: Engine.from_base(base, policy=pol, max_batch=8, max_len=320)
               for name, pol in ENGINE_ROWS.items() if name in args.rows.split(",")}
    turns = ttft_prompts(tok, spec["system"], args.ttft_runs, warmup=0)
    system_ids, users = turns["system_ids"], turns["timed"]
    for engine in engines.values():
        engine.cache_prefix(system_ids)
    steps: dict[str, list[float]] = {}
    ttft: dict[str, list[float]] = {}
    with torch.inference_mode():
        from transformers import DynamicCache

        def hf_state(b):
            width = max(len(p) for p in prompts[:b])
            ids = torch.tensor([[tok.eos_token_id] * (width - len(p)) + p for p in prompts[:b]])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts[:b]])
            cache = DynamicCache(config=hf.config)
            out = hf(ids, attention_mask=mask, past_key_values=cache, use_cache=True, logits_to_keep=1)
            return {"cache": out.past_key_values, "mask": mask, "next": out.logits[:, -1].argmax(-1)}

        states = {b: hf_state(b) for b in (1, 8)}
        for engine in engines.values():
            for b in (1, 8):
                engine.generate(prompts[:b], max_new_tokens=1, stop_at_eos=False)
        nxt = {(name, b): [5] * b for name in engines for b in (1, 8)}
        for _ in range(args.rounds):
            for b in (1, 8):
                st = states[b]
                st["mask"] = torch.cat([st["mask"], torch.ones(b, 1, dtype=torch.long)], 1)
                t0 = time.perf_counter()
                out = hf(st["next"][:, None], attention_mask=st["mask"], past_key_values=st["cache"],
                         use_cache=True)
                st["next"] = out.logits[:, -1].argmax(-1)
                steps.setdefault(f"hf/b{b}", []).append(time.perf_counter() - t0)
                for name, engine in engines.items():
                    t0 = time.perf_counter()
                    logits = engine.decode(nxt[(name, b)])
                    nxt[(name, b)] = logits.argmax(-1).tolist()
                    steps.setdefault(f"{name}/b{b}", []).append(time.perf_counter() - t0)
            for name, engine in engines.items():
                ids = users[len(ttft.get(name, [])) % len(users)]
                ttft.setdefault(name, []).append(engine.first_token(ids, slot=1)[1])
            t0 = time.perf_counter()
            hf(torch.tensor([users[len(ttft.get("hf_uncached", [])) % len(users)]]), logits_to_keep=1)
            ttft.setdefault("hf_uncached", []).append(time.perf_counter() - t0)
    rows: dict = {}
    for key, values in steps.items():
        name, b = key.split("/")
        bs = int(b[1:])
        rows.setdefault(name, {})[f"{b}_tok_s_best"] = round(bs / min(values), 1)
        rows[name][f"{b}_tok_s_median"] = round(bs / statistics.median(values), 1)
    for name, values in ttft.items():
        rows.setdefault(name.replace("_uncached", ""), {})["ttft_ms_best"] = round(1000 * min(values), 1)
        rows[name.replace("_uncached", "")]["ttft_ms_median"] = round(1000 * statistics.median(values), 1)
    return {"mode": "interleaved", "rounds": args.rounds, "system_tokens": len(system_ids),
            "user_tokens": turns["user_tokens"], "computed_tokens": turns["computed_tokens"], "rows": rows}


def _agreement(ours: list[list[int]], ref: list[list[int]]) -> float:
    """Mean share of the 128 greedy tokens that match the reference before the first divergence."""
    shares = []
    for a, b in zip(ours, ref, strict=False):
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        shares.append(n / max(len(b), 1))
    return round(statistics.mean(shares), 3) if shares else float("nan")


def run_row(args, name: str) -> dict:
    if name == "hf":
        return run_hf_row(args)
    if name == "llama.cpp":
        return run_llamacpp_row(args)
    if name in ENGINE_ROWS:
        return run_engine_row(args, ENGINE_ROWS[name])
    raise SystemExit(f"unknown row {name!r}; expected hf, llama.cpp or one of {sorted(ENGINE_ROWS)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default=DEFAULT_ROWS)
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: run one row in this process
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batches", default="8,32")
    parser.add_argument("--hf-batches", default="8")
    parser.add_argument("--ttft-runs", type=int, default=24,
                        help="timed first-token trials, each a distinct 30-token user turn (at least 20)")
    parser.add_argument("--ttft-only", action="store_true",
                        help="only the time-to-first-token part of each row (no decoding, perplexity, "
                        "llama.cpp)")
    parser.add_argument("--ppl-docs", type=int, default=8)
    parser.add_argument("--ppl-tokens", type=int, default=256)
    parser.add_argument("--interleaved", action="store_true",
                        help="one process, decode steps of every system interleaved, min-of-N per step")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",") if b]
    if args.ttft_runs < 20:
        parser.error(f"--ttft-runs must be at least 20 for a p50 worth reporting, got {args.ttft_runs}")
    args.hf_batches = [int(b) for b in args.hf_batches.split(",") if b]
    if args.row:
        print(json.dumps(run_row(args, args.row)))
        return
    if args.interleaved:
        result = run_interleaved(args)
        result["load_avg_1m"] = round(os.getloadavg()[0], 2)
        print(json.dumps(result))
        return
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    rows: dict[str, dict] = {}
    for name in args.rows.split(","):
        cmd = [sys.executable, __file__, "--row", name] + [
            f"--{k.replace('_', '-')}={','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items() if k not in ("rows", "row", "ttft_only", "interleaved")
        ] + (["--ttft-only"] if args.ttft_only else [])
        logger.info("row %s ...", name)
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        rows[name] = json.loads(lines[-1]) if done.returncode == 0 and lines else {
            "status": f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}"}
        logger.info("row %s: %s", name, {k: v for k, v in rows[name].items() if k != "_outputs"})
    ref = rows.get("fp32", {}).get("_outputs")
    for row in rows.values():
        outs = row.pop("_outputs", None)
        if ref and outs:
            row["greedy_agreement_vs_fp32"] = _agreement(outs.get("b8", outs["b1"]), ref.get("b8", ref["b1"]))
    summary = _ratios(rows)
    print(json.dumps({"bench": "decode", "threads": args.threads, "new_tokens": args.new_tokens,
                      "ttft_only": args.ttft_only, "load_avg_1m": round(os.getloadavg()[0], 2), "rows": rows,
                      "ratios": summary}))


def _ratios(rows: dict) -> dict:
    out: dict = {}
    hf_ttft = rows.get("hf", {}).get("ttft_uncached_p50_ms")
    ours_ttft = {k: v["ttft_p50_ms"] for k, v in rows.items() if k in ENGINE_ROWS and "ttft_p50_ms" in v}
    if ours_ttft:
        out["ttft_target_ms"] = TTFT_TARGET_MS
        out["ttft_p50_under_target"] = {k: v < TTFT_TARGET_MS for k, v in ours_ttft.items()}
        if hf_ttft:
            out["ttft_speedup_vs_hf_uncached"] = {k: round(hf_ttft / v, 2) for k, v in ours_ttft.items()}
    hf = rows.get("hf", {}).get("b1_tok_s")
    lcpp = rows.get("llama.cpp", {}).get("b1_tok_s")
    fp32_ppl = rows.get("fp32", {}).get("ppl")
    ours = {k: v for k, v in rows.items() if k in ENGINE_ROWS and "b1_tok_s" in v}
    if ours:
        best = max(ours, key=lambda k: ours[k]["b1_tok_s"])
        out["best_b1"] = best
        if lcpp:
            out["best_b1_vs_llama_cpp"] = round(ours[best]["b1_tok_s"] / lcpp, 3)
        if fp32_ppl:
            out["ppl_change_pct"] = {k: round(100 * (v["ppl"] / fp32_ppl - 1), 2) for k, v in ours.items()}
            kept = {k: v for k, v in ours.items() if v["ppl"] <= fp32_ppl * (1 + PPL_TOLERANCE)}
            if kept:  # the target: the fastest row whose perplexity stays within 3% of fp32
                best_kept = max(kept, key=lambda k: kept[k]["b1_tok_s"])
                out["best_b1_within_3pct_ppl"] = best_kept
                if lcpp:
                    out["best_b1_within_3pct_ppl_vs_llama_cpp"] = round(kept[best_kept]["b1_tok_s"] / lcpp, 3)
        if hf:
            out["b1_vs_hf_b1"] = {k: round(v["b1_tok_s"] / hf, 2) for k, v in ours.items()}
            out["b8_vs_hf_b1"] = {k: round(v["b8_tok_s"] / hf, 2) for k, v in ours.items() if "b8_tok_s" in v}
    return out


if __name__ == "__main__":
    main()
