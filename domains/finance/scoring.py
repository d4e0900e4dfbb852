"""Pick a label by the model's likelihood: one forward pass per prompt when every label is one token."""

from __future__ import annotations

from collections.abc import Sequence

from eval.registry import SystemSpec


def choose_labels(
    system: SystemSpec,
    prompts: Sequence[str],
    labels: Sequence[str],
    system_prompt: str | None = None,
    batch_size: int = 8,
) -> list[dict]:
    """For each chat prompt, the label the model finds most likely as the reply, with per-label scores.

    When every label is a single token, its score is the next-token log-probability after the prompt
    (one forward pass per prompt); otherwise ``eval.model_io.choose`` scores whole continuations.

    Returns:
        ``[{"label": str, "scores": {label: log-prob}}]``, one per prompt.
    """
    import torch

    from eval.model_io import chat_prompt, choose
    from eval.systems import load_system

    loaded = load_system(system)
    tok = loaded.tokenizer
    ids = [tok.encode(label, add_special_tokens=False) for label in labels]
    if any(len(i) != 1 for i in ids):
        out = []
        for prompt in prompts:
            picked = choose(system, prompt, list(labels), system_prompt=system_prompt)
            out.append({"label": picked.option, "scores": dict(zip(labels, picked.scores, strict=True))})
        return out
    label_ids = torch.tensor([i[0] for i in ids])
    texts = [chat_prompt(tok, p, system_prompt) for p in prompts]
    previous, tok.padding_side = tok.padding_side, "left"
    results = []
    try:
        for start in range(0, len(texts), batch_size):
            batch = tok(texts[start : start + batch_size], return_tensors="pt", padding=True)
            with torch.inference_mode():
                logits = loaded.model(**batch).logits[:, -1, :]  # (B, V), last position (left padding)
            logprobs = torch.log_softmax(logits.float(), dim=-1)[:, label_ids]  # (B, n_labels)
            for row in logprobs.tolist():
                best = max(range(len(labels)), key=lambda i: row[i])
                results.append({"label": labels[best], "scores": dict(zip(labels, row, strict=True))})
    finally:
        tok.padding_side = previous
    return results
