"""Parity of the converted base against transformers' ``LlamaForCausalLM`` on the same weights.

``dsuite base check`` prints one JSON line: the maximum absolute logit difference over every position of
at least 8 chat-formatted prompts (fp32), and whether greedy decoding of 64 new tokens gives identical tokens
for every prompt.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)

PROMPTS_FILE = Path(__file__).with_name("check_prompts.json")
LOGIT_TOLERANCE = 1e-3


def check_prompts() -> list[str]:
    """The parity prompts, validated (at least 8 non-empty strings)."""
    data = json.loads(PROMPTS_FILE.read_text())
    prompts = data.get("prompts") if isinstance(data, dict) else None
    valid = isinstance(prompts, list) and all(isinstance(p, str) and p for p in prompts)
    if not valid or len(prompts) < 8:
        raise DSuiteError(f"{PROMPTS_FILE} must hold {{'prompts': [...]}} with at least 8 non-empty strings.")
    return prompts


def _batch(tokenizer, prompts: list[str]) -> dict:
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    tokenizer.padding_side = "left"
    return tokenizer(texts, return_tensors="pt", padding=True)


@torch.no_grad()
def parity(
    model, reference, tokenizer, prompts: list[str], new_tokens: int = 64, progress: bool = True
) -> dict:
    """Compare two causal LMs on ``prompts``: max |logit diff| and greedy-token equality.

    Each prompt is run alone (no padding) for the logits; greedy decoding runs the prompts as one
    left-padded batch through both models.
    """
    max_diff = 0.0
    for prompt in tqdm(prompts, desc="Logit parity", disable=not progress):
        enc = _batch(tokenizer, [prompt])
        ours = model(**enc, use_cache=False).logits.float()
        ref = reference(**enc, use_cache=False).logits.float()
        max_diff = max(max_diff, (ours - ref).abs().max().item())
    enc = _batch(tokenizer, prompts)
    settings = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, temperature=None,
                    top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
    logger.info("greedy decoding %d tokens for %d prompts with both models", new_tokens, len(prompts))
    ours = model.generate(**enc, **settings)[:, enc["input_ids"].shape[1]:]
    ref = reference.generate(**enc, **settings)[:, enc["input_ids"].shape[1]:]
    same_rows = (ours == ref).all(dim=1)
    return {
        "prompts": len(prompts),
        "max_abs_logit_diff": max_diff,
        "greedy_tokens": int(ours.shape[1]),
        "greedy_identical": bool(same_rows.all()),
        "greedy_identical_prompts": int(same_rows.sum()),
    }


def run_check(base: str | os.PathLike | None = None, reference: str | os.PathLike | None = None,
              new_tokens: int = 64, progress: bool = True) -> dict:
    """Load the converted base and its Llama reference, and measure their parity.

    Args:
        base: the converted checkpoint (``None``: the embedded default).
        reference: the Llama checkpoint it was converted from (``None``: the embedded Llama reference).
        new_tokens: greedy tokens to compare per prompt.
        progress: show progress bars.

    Raises:
        DSuiteError: the reference folder is missing.
    """
    from transformers import AutoModelForCausalLM

    from core_model.base import embedded_hf_dir, load_base, validate_base_dir

    loaded = load_base(base)
    ref_dir = validate_base_dir(reference) if reference is not None else embedded_hf_dir()
    if not (ref_dir / "config.json").is_file():
        raise DSuiteError(
            f"The Llama reference checkpoint '{ref_dir}' is missing. Run `dsuite base prepare` (it keeps the "
            "Llama checkpoint beside the converted one) or pass --reference PATH."
        )
    ref = AutoModelForCausalLM.from_pretrained(ref_dir, dtype=torch.float32).eval()
    result = parity(loaded.model, ref, loaded.tokenizer, check_prompts(), new_tokens, progress)
    result.update({
        "dtype": "float32",
        "tolerance": LOGIT_TOLERANCE,
        "passed": result["max_abs_logit_diff"] < LOGIT_TOLERANCE and result["greedy_identical"],
        "base": str(loaded.path),
        "fingerprint": loaded.fingerprint,
        "reference": str(ref_dir),
    })
    return result
