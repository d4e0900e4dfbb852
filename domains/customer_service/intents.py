"""Intent classification with out-of-scope rejection: MiniLM (+ a small LoRA) and a cosine head.

An ``IntentModel`` lives in ``data/customer_service/intents/<name>/``: the peft LoRA of the encoder's
upper layers, ``head.safetensors`` (class directions and biases), optionally ``tfidf.json`` +
``tfidf_lr.safetensors`` (character n-gram regression) and ``baseline_lr.safetensors`` (regression on frozen
embeddings), optionally more LoRA + head pairs in ``lora_head2/`` ... (averaged with the first), for a data
set with out-of-scope queries ``familiarity.faiss`` (the in-scope training
embeddings, ``familiarity.py``), and ``meta.json`` (labels, scale, the members' ensemble ``weights``, the
familiarity exponent and the out-of-scope threshold, all chosen on the validation split, and the training
metrics).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from core_model.errors import DSuiteError
from domains.customer_service import familiarity, tfidf
from eval.data.paths import PROJECT_DATA

logger = logging.getLogger(__name__)

INTENTS_DIR = PROJECT_DATA / "customer_service" / "intents"
OOS = "oos"
EXTRA_HEAD_PREFIX = "lora_head"  # lora_head2/, lora_head3/ ...: more LoRA + head pairs, averaged


@dataclass(frozen=True)
class IntentPrediction:
    """The predicted intent of one text.

    Attributes:
        label: the intent, or ``"oos"`` when rejected as out of scope.
        confidence: probability of the best in-scope intent (the members' average), times the query's
            familiarity ** alpha when the model weighs familiarity; rejection compares it to the threshold.
        best: the best in-scope intent even when rejected.
        top: the three best ``(intent, probability)`` pairs.
    """

    label: str
    confidence: float
    best: str
    top: list[tuple[str, float]] = field(default_factory=list)

    @property
    def out_of_scope(self) -> bool:
        return self.label == OOS


def head_probabilities(parts, heads, scale: float):
    """The cosine heads' softmax probabilities (N, C), averaged over the heads.

    Args:
        parts: per head, the unit embeddings (N, H) of that head's encoder.
        heads: per head, ``(weight (C, H) unit rows, bias (C,))``.
        scale: the cosine logit scale.
    """
    import torch

    return sum(
        torch.softmax(scale * torch.as_tensor(part) @ weight.T + bias, -1).numpy()
        for part, (weight, bias) in zip(parts, heads, strict=True)
    ) / len(heads)


@dataclass
class IntentModel:
    """A trained intent classifier (encoder LoRA + cosine head + rejection threshold)."""

    name: str
    labels: list[str]
    weight: object  # torch.Tensor (C, H), rows unit-norm
    bias: object  # torch.Tensor (C,)
    scale: float
    threshold: float | None
    folder: Path
    meta: dict

    @classmethod
    def load(cls, name_or_dir: str | Path) -> IntentModel:
        """Load a saved model by name (``banking77``, ``clinc150``, ``bitext``) or folder.

        Read once per process and shared (prediction only reads it; its encoders and TF-IDF part load on
        first use) while the folder's files stay as they are: a retrained model is read again. Every support
        conversation, and the hub's every support message, starts a session that loads its intent model.

        Raises:
            DSuiteError: the folder or one of its files is missing.
        """
        folder = Path(name_or_dir)
        if not folder.is_dir():
            folder = INTENTS_DIR / str(name_or_dir)
        meta_path, head_path = folder / "meta.json", folder / "head.safetensors"
        if not meta_path.is_file() or not head_path.is_file():
            known = sorted(p.name for p in INTENTS_DIR.glob("*") if (p / "meta.json").is_file())
            raise DSuiteError(
                f"No intent model at '{folder}' (expected meta.json and head.safetensors). Known models: "
                f"{', '.join(known) or '(none)'}. Train one with `dsuite cs train-intents --dataset NAME`."
            )
        stats = [(f.name, f.stat()) for f in sorted(folder.iterdir())]
        stamp = tuple((name, st.st_mtime_ns, st.st_size) for name, st in stats)
        return cls._read(folder, stamp)

    @classmethod
    @lru_cache(maxsize=8)
    def _read(cls, folder: Path, stamp: tuple) -> IntentModel:  # noqa: ARG003 - stamp keys the cache
        from safetensors.torch import load_file

        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        head = load_file(str(folder / "head.safetensors"))
        return cls(
            meta["name"],
            list(meta["labels"]),
            head["weight"],
            head["bias"],
            float(meta["scale"]),
            meta.get("threshold"),
            folder,
            meta,
        )

    @property
    def lora_dir(self) -> Path | None:
        return self.folder if (self.folder / "adapter_config.json").is_file() else None

    @property
    def heads(self) -> list[tuple[Path | None, object, object]]:
        """``(lora_dir, weight (C, H), bias (C,))`` of each LoRA + head pair, the folder's own first."""
        if not hasattr(self, "_heads"):
            from safetensors.torch import load_file

            extra = sorted(
                (p for p in self.folder.glob(f"{EXTRA_HEAD_PREFIX}*") if p.is_dir()),
                key=lambda p: int(p.name[len(EXTRA_HEAD_PREFIX) :] or 0),
            )
            self._heads = [(self.lora_dir, self.weight, self.bias)]
            for folder in extra:
                if not all((folder / f).is_file() for f in ("head.safetensors", "adapter_config.json")):
                    raise DSuiteError(
                        f"'{folder}' lacks head.safetensors or adapter_config.json; retrain with "
                        f"`dsuite cs train-intents --dataset {self.name}`."
                    )
                head = load_file(str(folder / "head.safetensors"))
                self._heads.append((folder, head["weight"], head["bias"]))
        return self._heads

    def embed(self, texts: list[str], progress: bool = False):
        """Unit embeddings from each fine-tuned encoder, side by side (N, heads * H)."""
        import numpy as np

        from domains.customer_service.encoder import embed

        parts = [embed(texts, lora_dir=lora_dir, progress=progress) for lora_dir, _, _ in self.heads]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, 1)

    @property
    def weights(self) -> dict[str, float]:
        """Ensemble weights of the members ``head``, ``tfidf`` and ``lr`` (older models: head + TF-IDF)."""
        if "weights" in self.meta:
            return {k: float(v) for k, v in self.meta["weights"].items() if v}
        mix = float(self.meta.get("tfidf_weight") or 0.0)
        return {"head": 1.0 - mix, "tfidf": mix} if mix > 0 else {"head": 1.0}

    def probabilities(self, embeddings, texts: list[str] | None = None):
        """Class probabilities (N, C): the cosine head over unit embeddings (N, H) from ``embed``, averaged
        with the TF-IDF regression and the frozen-embedding regression over ``texts`` by ``weights``; the
        in-scope columns weighted by familiarity when the model uses it (``familiarity.rescale``)."""
        import numpy as np

        weights = self.weights
        if set(weights) - {"head"} and texts is None:
            raise DSuiteError(f"Intent model '{self.name}' mixes in {sorted(weights)}; pass the texts too.")
        heads, width = self.heads, self.weight.shape[1]
        if embeddings.shape[1] != len(heads) * width:
            raise DSuiteError(
                f"Intent model '{self.name}' has {len(heads)} head(s) of width {width}; pass the embeddings "
                f"of its own embed() (got width {embeddings.shape[1]})."
            )
        probs = np.zeros((len(embeddings), len(self.labels)), dtype=np.float64)
        if weights.get("head"):
            parts = [embeddings[:, k * width : (k + 1) * width] for k in range(len(heads))]
            pairs = [(weight, bias) for _, weight, bias in heads]
            probs += weights["head"] * head_probabilities(parts, pairs, self.scale)
        if weights.get("tfidf"):
            probs += weights["tfidf"] * tfidf.probabilities(*self.lexical, texts)
        if weights.get("lr"):
            frozen = embeddings if self.lora_dir is None else self._frozen_embed(texts)
            probs += weights["lr"] * self.frozen_lr_probabilities(frozen)
        alpha = float(self.meta.get("familiarity_alpha") or 0.0)
        if alpha:
            probs = familiarity.rescale(probs, self.familiarity(embeddings), alpha, self.labels.index(OOS))
        return probs

    def familiarity(self, embeddings):
        """Similarity (N,) of each embedding from ``embed`` to its nearest in-scope training example (with
        several heads, the average of their cosine similarities)."""
        if not hasattr(self, "_index"):
            self._index = familiarity.load_index(self.folder)
        return familiarity.nearest_similarity(self._index, familiarity.joint(embeddings, len(self.heads)))

    def _frozen_embed(self, texts: list[str]):
        from domains.customer_service.encoder import embed

        return embed(texts)

    def frozen_lr_probabilities(self, frozen_embeddings):
        """Probabilities (N, C) of the logistic regression on frozen MiniLM embeddings (the baseline)."""
        import torch
        from safetensors.torch import load_file

        if not hasattr(self, "_frozen_lr"):
            path = self.folder / "baseline_lr.safetensors"
            if not path.is_file():
                raise DSuiteError(
                    f"'{path}' is missing; retrain with `dsuite cs train-intents --dataset {self.name}`."
                )
            self._frozen_lr = load_file(str(path))
        logits = torch.as_tensor(frozen_embeddings) @ self._frozen_lr["weight"].T + self._frozen_lr["bias"]
        return torch.softmax(logits, -1).numpy()

    @property
    def lexical(self):
        """The TF-IDF part ``(vectorizer, weight, bias)``, loaded on first use."""
        if not hasattr(self, "_lexical"):
            self._lexical = tfidf.load(self.folder)
            if self._lexical is None:
                raise DSuiteError(f"Intent model '{self.folder}' lacks tfidf.json; retrain it.")
        return self._lexical

    def decide(self, probs, threshold: float | None = None) -> list[IntentPrediction]:
        """Turn probabilities into predictions, rejecting below ``threshold`` (default: the saved one)."""
        import numpy as np

        threshold = self.threshold if threshold is None else threshold
        in_scope = [i for i, label in enumerate(self.labels) if label != OOS]
        out = []
        for row in probs:
            order = np.argsort(-row)
            top = [(self.labels[i], float(row[i])) for i in order[:3]]
            best = max(in_scope, key=lambda i: row[i])
            winner = self.labels[order[0]]
            confidence = float(row[best])
            rejected = winner == OOS or (threshold is not None and confidence < threshold)
            out.append(
                IntentPrediction(OOS if rejected else self.labels[best], confidence, self.labels[best], top)
            )
        return out

    def predict(
        self, texts: list[str], threshold: float | None = None, progress: bool = False
    ) -> list[IntentPrediction]:
        """Predict the intent of each text (``"oos"`` when rejected)."""
        if isinstance(texts, str):
            raise DSuiteError("IntentModel.predict takes a list of texts; wrap a single text in a list.")
        if not texts:
            return []
        texts = list(texts)
        return self.decide(self.probabilities(self.embed(texts, progress=progress), texts), threshold)
