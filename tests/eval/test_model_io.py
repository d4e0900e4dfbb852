"""Asking the real embedded base: completions, log-likelihoods, option choice, perplexity, the CLI."""

from __future__ import annotations

import json
import math

import pytest

from core_model.errors import DSuiteError
from eval import model_io
from eval.registry import SystemSpec

pytestmark = pytest.mark.slow
BASE = SystemSpec()


def test_loglik_choose_and_complete(embedded_base):
    contexts = ["The capital of France is", "The capital of France is", "Two plus two equals"]
    continuations = [" Paris", " Berlin", " four"]
    batched = model_io.loglik(BASE, contexts, continuations)
    assert [n for _, n in batched] == [1, 1, 1]
    assert batched[0][0] > batched[1][0] + 2.0  # Paris far more likely than Berlin
    ((alone, _),) = model_io.loglik(BASE, contexts[2:], continuations[2:])
    assert batched[2][0] == pytest.approx(alone, abs=1e-3)  # right padding in the batch changes nothing
    choice = model_io.choose(
        BASE, "What is the capital of France? Answer with the city name.", ["Berlin", "Paris"]
    )
    assert choice.option == "Paris" and choice.index == 1 and len(choice.scores) == 2
    with pytest.raises(DSuiteError, match="at least two"):
        model_io.choose(BASE, "Pick one", ["only"])
    answers = model_io.complete(BASE, ["What is the capital of France?", "Name a colour."], max_new_tokens=6)
    assert len(answers) == 2 and all(answers) and "Paris" in answers[0]


def test_complete_through_the_engine_equals_padded_generate(embedded_base):
    """The engine path (no padding, finished rows leave) gives generate()'s greedy tokens on the real base."""
    from eval.systems import load_system

    prompts = ["What is a bond?", "Name three colours of the rainbow, one per line.", "Say hi."]
    answers = model_io.complete(BASE, prompts, max_new_tokens=16, batch_size=3)
    loaded = load_system(BASE)
    assert loaded.engine is not None and not loaded.engine_unsupported
    tok = loaded.tokenizer
    ids = [tok(model_io.chat_prompt(tok, p))["input_ids"] for p in prompts]
    padded = model_io._generate_padded(loaded, ids, 16)
    assert answers == [t.strip() for t in tok.batch_decode(padded, skip_special_tokens=True)]


def test_complete_falls_back_to_generate_for_models_the_engine_cannot_run(embedded_base):
    from core_model.config import config_from_preset
    from core_model.model import DSuiteForCausalLM
    from eval.systems import LoadedSystem

    model = DSuiteForCausalLM(config_from_preset("tiny", attention_mode="hybrid")).eval()
    loaded = LoadedSystem(model, embedded_base.tokenizer, "tiny-hybrid", "none")
    assert model_io._engine_for(loaded, 2, 64) is None and loaded.engine_unsupported


def test_token_nll_matches_a_manual_cross_entropy(embedded_base):
    import torch

    text = "The patient denies chest pain and shortness of breath."
    (nll, n), _ = model_io.token_nll(
        BASE, [text, "A much longer second text, to force right padding of the first."]
    )
    ids = embedded_base.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logits = embedded_base.model(input_ids=ids).logits[0, :-1]
    expected = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
    assert n == ids.shape[1] - 1
    assert nll == pytest.approx(expected, rel=1e-4)


def test_baselines_have_no_model():
    with pytest.raises(DSuiteError, match="is a baseline, not a model"):
        model_io.complete(SystemSpec(baseline="majority"), ["hi"])


def test_perplexity_task_base_beats_unigram_via_the_cli(tmp_path, embedded_base):
    from tests.conftest import invoke_dsuite

    listed = invoke_dsuite("eval", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "lm.perplexity" in {row["name"] for row in json.loads(listed.stdout)}

    out = tmp_path / "ppl"
    ran = invoke_dsuite(
        "eval", "run", "lm.perplexity", "--systems", "all", "--limit", "4", "--out", str(out), "--json"
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    rows = {row["system"]: row["metrics"] for row in json.loads(ran.stdout)[0]["rows"]}
    base, unigram = rows["base"]["perplexity"], rows["baseline:unigram"]["perplexity"]
    assert math.isfinite(base) and 1 < base < unigram / 5  # a language model, far better than unigram
    assert rows["base"]["tokens"] == rows["baseline:unigram"]["tokens"]  # the same tokens scored
    assert (out / "report.md").is_file() and (out / "metrics.png").is_file()

    compared = invoke_dsuite("eval", "compare", str(out), str(out), "--out", str(tmp_path / "cmp"))
    assert compared.returncode == 0, compared.stderr
    assert "(+0.0000)" in compared.stdout and (tmp_path / "cmp" / "compare.png").is_file()

    bad = invoke_dsuite("eval", "run", "no.such_task")
    assert bad.returncode == 2 and "Unknown task 'no.such_task'" in bad.stderr
