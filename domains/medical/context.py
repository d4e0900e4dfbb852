"""ConText-style assertion: negated, possible, historical, hypothetical and family status of each mention.

The algorithm follows ConText (Harkema et al., 2009) as medspaCy implements it: trigger phrases from a
rules file, each with a category and a direction; a trigger modifies the targets within its scope in the
same sentence (``max_scope_tokens`` tokens, cut at a terminating phrase unless the terminator ``spares`` the
trigger's category: "risk of death secondary to DVT" keeps DVT hypothetical); pseudo-triggers ("no change",
"gram negative") mask the triggers they contain; a ``self`` trigger is a finding negated in one word
("nontender"): it qualifies no other mention, only a sentence that is itself the evidence. Section defaults
(``family_history`` -> family) apply when no rule in the sentence decides the same category.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc, Span

from domains.medical.resources import CONTEXT_RULES, MEDICAL_DATA, load_validated
from domains.medical.text import section_assertion, sentence_bounds, token_texts, tokenizer

CATEGORY_TO_STATUS = {
    "NEGATED_EXISTENCE": "negated",
    "POSSIBLE_EXISTENCE": "possible",
    "HISTORICAL": "historical",
    "HYPOTHETICAL": "hypothetical",
    "FAMILY": "family",
}
# the status a mention reports when several categories apply (most decisive for coding first)
STATUS_PRECEDENCE = ("negated", "family", "hypothetical", "possible", "historical")
NOT_CODED = frozenset({"negated", "family", "hypothetical"})
# rules with a scope this short qualify only the words beside them, never a whole sentence
ADJACENT_SCOPE = 3

for _name in ("assertion", "modifiers", "section"):
    if not Span.has_extension(_name):
        Span.set_extension(_name, default=None)


@dataclass(frozen=True)
class Rule:
    """One trigger phrase."""

    tokens: tuple[str, ...]
    category: str
    direction: str
    max_scope: int
    spares: frozenset[str] = frozenset()  # terminators only: the categories whose scope this one does not cut


@dataclass(frozen=True)
class Trigger:
    """A rule matched at tokens ``[start, end)`` of a doc."""

    rule: Rule
    start: int
    end: int


class ContextRules:
    """The rules of a ConText rules file, indexed by first token for a linear scan."""

    def __init__(self, path: Path | str | None = None) -> None:
        """Load and validate the rules.

        Args:
            path: a rules JSON file (schema ``context_rules.schema.json``); None: the shipped one.
        """
        data = load_validated(
            Path(path) if path else CONTEXT_RULES, MEDICAL_DATA / "context_rules.schema.json"
        )
        default_scope = int(data.get("max_scope_tokens", 12))
        self.by_first: dict[str, list[Rule]] = {}
        for item in data["rules"]:
            tokens = tuple(_split(item["literal"]))
            rule = Rule(
                tokens,
                item["category"],
                item["direction"],
                int(item.get("max_scope_tokens", default_scope)),
                frozenset(item.get("spares", ())),
            )
            self.by_first.setdefault(tokens[0], []).append(rule)
        for rules in self.by_first.values():
            rules.sort(key=lambda r: -len(r.tokens))  # longest first

    def find(self, words: list[str], start: int, end: int) -> list[Trigger]:
        """Triggers in ``words[start:end]``: the longest match at each position (matches may overlap, so
        "was negative for" yields both "was negative" and "negative for"); no trigger starts inside a
        pseudo-trigger ("no change", "gram negative")."""
        found, masked_until = [], start
        for i in range(start, end):
            match = None
            for rule in self.by_first.get(words[i], ()):
                n = len(rule.tokens)
                if i + n <= end and tuple(words[i : i + n]) == rule.tokens:
                    match = Trigger(rule, i, i + n)
                    break
            if match is None:
                continue
            if match.rule.direction == "pseudo":
                masked_until = max(masked_until, match.end)
            elif i >= masked_until:
                found.append(match)
        return found


def _split(text: str) -> list[str]:
    return [t.lower_ for t in tokenizer()(text) if not t.is_space]


def assert_targets(doc: Doc, targets: list[Span], rules: ContextRules) -> None:
    """Set ``span._.assertion`` (and ``span._.modifiers``) on each target span of ``doc``.

    Args:
        doc: a doc with sentence boundaries.
        targets: spans of ``doc`` (condition mentions).
        rules: the trigger rules.
    """
    if not targets:
        return
    words = [w.lower() for w in token_texts(doc)]
    bounds = sentence_bounds(doc)
    starts = [b[0] for b in bounds]
    cache: dict[int, list[Trigger]] = {}
    for span in targets:
        sent_start, sent_end = bounds[bisect.bisect_right(starts, span.start) - 1]
        if sent_start not in cache:
            cache[sent_start] = rules.find(words, sent_start, sent_end)
        triggers = cache[sent_start]
        modifiers = _modifiers_for(span, triggers)
        section_status = section_assertion(doc, span.start_char)
        statuses = {CATEGORY_TO_STATUS[t.rule.category] for t in modifiers}
        if section_status and section_status not in statuses:
            statuses.add(section_status)
        span._.modifiers = [
            {"phrase": doc[t.start : t.end].text, "category": t.rule.category, "direction": t.rule.direction}
            for t in modifiers
        ]
        span._.assertion = next((s for s in STATUS_PRECEDENCE if s in statuses), "present")


def sentence_assertion(doc: Doc, start: int, end: int, rules: ContextRules) -> str:
    """Assertion status of a whole sentence (tokens ``[start, end)``), for evidence that is a sentence.

    Conservative: every trigger in the sentence applies, whatever its direction and scope (a sentence
    that denies anything counts as negated), plus the section default. Triggers that reach only the word
    or two beside them (``max_scope_tokens`` < ``ADJACENT_SCOPE``: "PE study") say nothing of a whole
    sentence ("A Doppler study revealed thrombosis.") and are left out.
    """
    words = [w.lower() for w in token_texts(doc)[start:end]]
    statuses = {
        CATEGORY_TO_STATUS[t.rule.category]
        for t in rules.find(words, 0, len(words))
        if t.rule.category in CATEGORY_TO_STATUS and t.rule.max_scope >= ADJACENT_SCOPE
    }
    section_status = section_assertion(doc, doc[start].idx) if end > start else None
    if section_status:
        statuses.add(section_status)
    return next((s for s in STATUS_PRECEDENCE if s in statuses), "present")


def _modifiers_for(span: Span, triggers: list[Trigger]) -> list[Trigger]:
    terminators = [t for t in triggers if t.rule.direction == "terminate"]
    chosen: dict[str, Trigger] = {}
    for trig in triggers:
        rule = trig.rule
        if rule.direction == "terminate" or (trig.start < span.end and span.start < trig.end):
            continue
        if trig.end <= span.start and rule.direction in ("forward", "bidirectional"):
            gap = (trig.end, span.start)
        elif trig.start >= span.end and rule.direction in ("backward", "bidirectional"):
            gap = (span.end, trig.start)
        else:
            continue
        if gap[1] - gap[0] > rule.max_scope:
            continue
        if any(
            gap[0] <= term.start and term.end <= gap[1] and rule.category not in term.rule.spares
            for term in terminators
        ):
            continue
        best = chosen.get(rule.category)
        if best is None or abs(trig.start - span.start) < abs(best.start - span.start):
            chosen[rule.category] = trig
    return list(chosen.values())


class ContextComponent:
    """spaCy component ``dsuite_context``: assertion status for every span in ``doc.spans[spans_key]``."""

    def __init__(self, nlp: Language, name: str, rules_path: str | None, spans_key: str) -> None:
        self.rules = ContextRules(rules_path)
        self.spans_key = spans_key

    def __call__(self, doc: Doc) -> Doc:
        targets = list(doc.spans[self.spans_key]) if self.spans_key in doc.spans else list(doc.ents)
        assert_targets(doc, targets, self.rules)
        return doc


@Language.factory("dsuite_context", default_config={"rules_path": None, "spans_key": "conditions"})
def make_context(nlp: Language, name: str, rules_path: str | None, spans_key: str) -> ContextComponent:
    """Factory of the ConText component (add it after ``dsuite_conditions``)."""
    return ContextComponent(nlp, name, rules_path, spans_key)
