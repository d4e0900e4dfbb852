"""Per-layer precision policies: parse ``"int4-g32@0-19,int8@20-29,int8@lm_head"`` into rules.

Grammar (rules separated by commas; later rules override earlier ones)::

    rule      := precision [ "@" selector ]
    precision := "fp32" | "int8" | "int4" [ "-g" GROUP ]      GROUP a multiple of 32 (32, 64, 128)
    selector  := "lm_head" | N | N "-" M | "*." SUFFIX        decoder blocks N..M (inclusive), or every
                                                               linear whose name ends with SUFFIX
                                                               (e.g. "*.down_proj", "*.experts")

A rule without a selector covers every linear layer of the decoder blocks and the output head. A policy
may also be a preset name from ``presets.yaml`` (``fp32``, ``int8``, ``int4``, ``int4-g64``, ``int4-g128``,
``mixed``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from core_model.errors import DSuiteError

PRESETS_FILE = Path(__file__).with_name("presets.yaml")
DEFAULT_GROUP = 32
GRAMMAR_HINT = (
    "Expected comma-separated rules PRECISION[@SELECTOR], PRECISION one of fp32, int8, int4, int4-gGROUP "
    "(GROUP a multiple of 32, e.g. int4-g64) and SELECTOR one of lm_head, a block N, a block range N-M or "
    "*.NAME_SUFFIX; for example 'int4-g32@0-19,int8@20-29,int8@lm_head'. Or a preset: {presets}."
)
_PRECISION = re.compile(r"^(fp32|int8|int4)(?:-g(\d+))?$")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_LAYER_OF = re.compile(r"(?:^|\.)layers\.(\d+)\.")


@dataclass(frozen=True)
class Rule:
    """One rule: a precision (``fp32``/``int8``/``int4``), its int4 group size, and what it selects."""

    precision: str
    group_size: int
    selector: str | None  # None: everything; "lm_head"; "N-M"; "*.suffix"
    first: int = -1
    last: int = -1

    def matches(self, name: str, layer: int | None) -> bool:
        if self.selector is None:
            return True
        if self.selector == "lm_head":
            return name == "lm_head" or name.endswith(".lm_head")
        if self.selector.startswith("*."):
            suffix = self.selector[1:]
            return name.endswith(suffix) or f"{suffix}." in name
        return layer is not None and self.first <= layer <= self.last


@dataclass(frozen=True)
class Policy:
    """A parsed precision policy: the original text and its rules in order."""

    text: str
    rules: tuple[Rule, ...]

    def precision_for(self, name: str) -> tuple[str, int]:
        """The ``(precision, group_size)`` for the linear layer ``name`` (``("fp32", 0)`` if none applies)."""
        layer = layer_index(name)
        chosen = ("fp32", 0)
        for rule in self.rules:
            if rule.matches(name, layer):
                chosen = (rule.precision, rule.group_size)
        return chosen

    def check_layers(self, num_layers: int) -> None:
        """Raise if a rule names a decoder block the model does not have."""
        for rule in self.rules:
            if rule.last >= num_layers:
                raise DSuiteError(
                    f"Precision policy '{self.text}' names block {rule.last}, but the model has {num_layers} "
                    f"decoder blocks (0-{num_layers - 1}). Use block numbers in that range."
                )


def layer_index(name: str) -> int | None:
    """The decoder block number in a module name like ``model.layers.12.mlp.down_proj`` (else None)."""
    match = _LAYER_OF.search(name)
    return int(match.group(1)) if match else None


@lru_cache(maxsize=1)
def presets() -> dict[str, str]:
    """Named policies from ``presets.yaml`` (validated: every value parses)."""
    data = yaml.safe_load(PRESETS_FILE.read_text())
    valid = isinstance(data, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in data.items())
    if not valid:
        raise DSuiteError(f"{PRESETS_FILE.name} must map preset names to policy strings, got {data!r}.")
    for name, text in data.items():
        _parse_rules(text, f"preset '{name}'")
    return dict(data)


def parse_policy(text: str) -> Policy:
    """Parse a policy string or preset name.

    Args:
        text: e.g. ``"int4"``, ``"mixed"`` or ``"int4-g64@0-19,int8@20-29,fp32@lm_head"``.

    Returns:
        The parsed ``Policy``.

    Raises:
        DSuiteError: the text does not follow the grammar; the message shows the grammar and presets.
    """
    if not isinstance(text, str) or not text.strip():
        raise DSuiteError(f"Precision policy must be a non-empty string, got {text!r}. " + _hint())
    text = text.strip()
    known = presets()
    source = known.get(text, text)
    return Policy(text=text, rules=_parse_rules(source, f"policy '{text}'"))


def _hint() -> str:
    return GRAMMAR_HINT.format(presets=", ".join(sorted(presets())))


def _parse_rules(text: str, where: str) -> tuple[Rule, ...]:
    rules = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            raise DSuiteError(f"Empty rule in {where}. " + _hint())
        precision_text, _, selector = part.partition("@")
        match = _PRECISION.match(precision_text.strip())
        if not match:
            raise DSuiteError(f"Unknown precision '{precision_text}' in {where}. " + _hint())
        precision, group = match.group(1), match.group(2)
        if group is not None and precision != "int4":
            raise DSuiteError(f"Only int4 takes a group size; got '{precision_text}' in {where}. " + _hint())
        group_size = int(group) if group else (DEFAULT_GROUP if precision == "int4" else 0)
        if precision == "int4" and (group_size <= 0 or group_size % 32):
            raise DSuiteError(
                f"int4 group size must be a positive multiple of 32, got {group_size} in {where}. " + _hint()
            )
        rules.append(_rule(precision, group_size, selector.strip() if "@" in part else None, where))
    return tuple(rules)


def _rule(precision: str, group_size: int, selector: str | None, where: str) -> Rule:
    if selector is None or selector == "lm_head":
        return Rule(precision, group_size, selector)
    if selector.startswith("*.") and len(selector) > 2:
        return Rule(precision, group_size, selector)
    match = _RANGE.match(selector)
    if not match:
        raise DSuiteError(f"Unknown selector '@{selector}' in {where}. " + _hint())
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    if last < first:
        raise DSuiteError(
            f"Block range '@{selector}' in {where} runs backwards; write it low-high. " + _hint()
        )
    return Rule(precision, group_size, f"{first}-{last}", first, last)
