"""PNG plots of reports (matplotlib, Agg backend): metric bars per system and confusion matrices."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

MAX_CONFUSION_LABELS = 20


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def metric_bars(
    title: str,
    systems: Sequence[str],
    metrics: Sequence[str],
    values: dict[str, dict[str, float]],
    path: Path,
) -> Path:
    """One small panel per metric, one bar per system side by side (baselines next to the model).

    Args:
        title: figure title.
        systems: row labels in plot order.
        metrics: metric names, one panel each (panels have their own scale: perplexity next to F1).
        values: ``{system: {metric: value}}``; missing values are left out.
        path: the PNG to write.
    """
    plt = _pyplot()
    metrics = list(metrics) or ["(no metric)"]
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows + 0.6), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    for ax, metric in zip(axes.flat, metrics, strict=False):
        heights = [values.get(s, {}).get(metric, math.nan) for s in systems]
        bars = ax.bar(
            range(len(systems)), heights, color=[colors[i % len(colors)] for i in range(len(systems))]
        )
        ax.set_title(metric, fontsize=10)
        ax.set_xticks(range(len(systems)), systems, rotation=30, ha="right", fontsize=8)
        for bar, height in zip(bars, heights, strict=True):
            if not math.isnan(height):
                ax.annotate(
                    f"{height:.3g}",
                    (bar.get_x() + bar.get_width() / 2, height),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        finite = [h for h in heights if not math.isnan(h)]
        if finite and 0 <= min(finite) and max(finite) <= 1:
            ax.set_ylim(0, 1.08)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion_matrix_png(
    title: str, y_true: Sequence, y_pred: Sequence, path: Path, max_labels: int = MAX_CONFUSION_LABELS
) -> Path:
    """A confusion matrix heat map; with many classes, the most frequent gold labels plus ``(other)``.

    Args:
        title: figure title.
        y_true: gold labels.
        y_pred: predicted labels.
        path: the PNG to write.
        max_labels: most classes drawn; the rest are pooled into ``(other)``.
    """
    from collections import Counter

    from eval.metrics import confusion

    plt = _pyplot()
    counts = Counter(map(str, y_true)) + Counter(map(str, y_pred))
    labels = sorted(counts, key=lambda label: (-counts[label], label))
    if len(labels) > max_labels:
        keep = set(labels[: max_labels - 1])
        labels = sorted(keep) + ["(other)"]
        fold = lambda label: str(label) if str(label) in keep else "(other)"  # noqa: E731
    else:
        labels = sorted(labels)
        fold = str
    labels, matrix = confusion([fold(t) for t in y_true], [fold(p) for p in y_pred], labels=labels)
    size = max(4.0, 0.42 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if value:
                color = "white" if value > peak / 2 else "black"
                ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
