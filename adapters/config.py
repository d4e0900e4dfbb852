"""Typed settings of a LoRA training run, with named presets (``LoraTrainConfig.preset("tiny")``)."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace

from core_model.errors import DSuiteError

DEFAULT_TARGETS = ("q_proj", "v_proj")


@dataclass(frozen=True)
class LoraTrainConfig:
    """Settings of one LoRA training run.

    Attributes:
        r: LoRA rank.
        alpha: LoRA alpha (the update is scaled by ``alpha / r``).
        dropout: dropout on the LoRA input during training.
        target_modules: names of the Linear modules to adapt (``q_proj``, ``v_proj``, ``gate_proj``,
            ``mlp.experts.0.up_proj``... any suffix peft accepts).
        epochs: passes over the training split.
        max_steps: train exactly this many optimizer steps, whatever ``epochs`` says (0: ``epochs`` decides).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: records per optimizer step (records of similar length are batched together).
        max_length: prompt + completion tokens per record. A longer record is truncated (and counted in a
            warning): the prompt keeps at least ``max_length // 2`` tokens (all of it if shorter) and the
            completion the rest, cut at its end and then without the end-of-turn token; a prompt that is
            still too long loses tokens from its middle, so its start (chat header, system prompt,
            instruction) and its end (the question and the assistant header) are kept.
        eval_fraction: share of the records held out for evaluation (at least one record).
        max_eval: at most this many held-out records are evaluated.
        seed: random seed of the split, the shuffling and the LoRA initialisation.
        checkpoint_every: save a resumable checkpoint every this many steps (0 = none).
        warmup_steps: linear learning-rate warm-up.
        layers: indices of the decoder layers that get LoRA (None: all). Training only the top layers is
            cheaper: no gradient flows below the lowest adapted layer.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    epochs: float = 1.0
    max_steps: int = 0
    lr: float = 2e-4
    weight_decay: float = 0.0
    batch_size: int = 8
    max_length: int = 256
    eval_fraction: float = 0.1
    max_eval: int = 200
    seed: int = 0
    checkpoint_every: int = 50
    warmup_steps: int = 5
    layers: tuple[int, ...] | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # `not x > 0` rather than `x <= 0`: NaN fails every comparison, so it is refused too
        if self.r < 1:
            raise DSuiteError(f"LoRA rank r must be >= 1, got {self.r}.")
        if not 0 < self.alpha < math.inf:
            raise DSuiteError(f"LoRA alpha must be a finite number > 0, got {self.alpha}.")
        if not 0 <= self.dropout < 1:
            raise DSuiteError(f"LoRA dropout must be in [0, 1), got {self.dropout}.")
        if isinstance(self.target_modules, str):
            object.__setattr__(self, "target_modules", tuple(_split(self.target_modules)))
        if not self.target_modules:
            raise DSuiteError(
                "target_modules is empty; name at least one Linear module, e.g. 'q_proj,v_proj'."
            )
        if self.max_steps < 0:
            raise DSuiteError(
                f"max_steps must be >= 0 (0: `epochs` decides the length), got {self.max_steps}."
            )
        if not 0 <= self.epochs < math.inf:
            raise DSuiteError(f"epochs must be a finite number >= 0, got {self.epochs}.")
        if self.epochs == 0 and self.max_steps == 0:
            raise DSuiteError(
                f"Set epochs > 0 or max_steps > 0 (got epochs={self.epochs}, max_steps={self.max_steps})."
            )
        if self.batch_size < 1:
            raise DSuiteError(f"batch_size must be >= 1, got {self.batch_size}.")
        if not 0 < self.eval_fraction < 1:
            raise DSuiteError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}.")
        if not 0 < self.lr < math.inf:
            raise DSuiteError(f"lr must be a finite number > 0 (e.g. 2e-4), got {self.lr}.")
        if not self.weight_decay >= 0:
            raise DSuiteError(f"weight_decay must be >= 0, got {self.weight_decay}.")
        if self.max_eval < 1:
            raise DSuiteError(f"max_eval must be >= 1 (held-out records evaluated), got {self.max_eval}.")
        if self.checkpoint_every < 0:
            raise DSuiteError(f"checkpoint_every must be >= 0 (0 = none), got {self.checkpoint_every}.")
        if self.warmup_steps < 0:
            raise DSuiteError(f"warmup_steps must be >= 0, got {self.warmup_steps}.")
        if self.seed < 0:
            raise DSuiteError(f"seed must be >= 0, got {self.seed}.")
        if self.layers is not None:
            object.__setattr__(self, "layers", _layer_indices(self.layers))
        if self.max_length < 8:
            raise DSuiteError(f"max_length must be >= 8 tokens, got {self.max_length}.")

    @property
    def scaling(self) -> float:
        """The factor applied to the LoRA update (``alpha / r``)."""
        return self.alpha / self.r

    def to_dict(self) -> dict:
        """JSON-able settings (recorded with every registered adapter)."""
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        if self.layers is not None:
            data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> LoraTrainConfig:
        """Settings from a dict (unknown keys are an error that names them)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise DSuiteError(f"Unknown LoRA training settings {unknown}; known settings: {sorted(known)}.")
        data = dict(data)
        if "target_modules" in data:
            data["target_modules"] = tuple(_split(data["target_modules"]))
        return cls(**data)

    @classmethod
    def preset(cls, name: str) -> LoraTrainConfig:
        """A named preset: ``default``, ``tiny`` (tests: a few steps) or ``quick`` (small demo tasks)."""
        if name not in PRESETS:
            raise DSuiteError(f"Unknown LoRA preset '{name}'; choose one of {sorted(PRESETS)}.")
        return PRESETS[name]

    def with_(self, **changes) -> LoraTrainConfig:
        """A copy with some settings changed."""
        return replace(self, **changes)


_LAYER_RANGE = re.compile(r"(\d+)(?:-(\d+))?")  # "18" or "18-29"; no sign, so never negative


def _layer_indices(value) -> tuple[int, ...]:
    """Sorted distinct decoder layer indices from a list or a string of indices and ranges ("18-29,31")."""
    matches = [_LAYER_RANGE.fullmatch(part) for part in _split(value)]
    found = {i for m in matches if m for i in range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1)}
    if not found or not all(matches):
        raise DSuiteError(
            f"layers={value!r}: give decoder layer indices counted from 0 (e.g. '18-29' or '18,20'), "
            "or leave layers out to adapt every layer."
        )
    return tuple(sorted(found))


def _split(value) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


PRESETS: dict[str, LoraTrainConfig] = {
    "default": LoraTrainConfig(),
    "tiny": LoraTrainConfig(
        r=4,
        alpha=8,
        dropout=0.0,
        max_steps=4,
        batch_size=4,
        checkpoint_every=2,
        warmup_steps=0,
        lr=1e-3,
        max_eval=8,
        max_length=64,
    ),
    "quick": LoraTrainConfig(
        r=16,
        alpha=32,
        dropout=0.05,
        epochs=1.0,
        batch_size=8,
        lr=1e-3,
        warmup_steps=5,
        max_length=160,
        max_eval=100,
    ),
}
