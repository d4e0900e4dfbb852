"""Code-level consistency of the codes a note would get, after ranking: rules as data
(``data/medical/code_rules.json``, validated by its schema).

``gives_way``: a catch-all goes when another code of the note starts with one of its prefixes (R69 "Illness,
unspecified" to any code; N18.9, chronic kidney disease of unspecified stage, to the coded stage).
``requires_mention``: a code that names a condition the ranker can draw from similar notes alone
("Hypertensive chronic kidney disease" beside "CKD stage 3") needs one of the condition's words in the note.
``contradicted_by``: a code goes when the note names only a variant it excludes (E11, type 2 diabetes, for a
note that says "type 1 diabetes" and never type 2).
``combines``: a code that ICD-10-CM combines with others of the note into one code becomes that code (I10 with
CKD stage 1-4 is I12.9: the classification presumes hypertension causes the kidney and heart disease it sits
beside).
``stage_conflict``: a code whose description names a stage ("stage 5", "End stage renal disease") goes when
its evidence sentences state stages and not that one ("CKD stage 3").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from domains.medical.icd_codes import describe
from domains.medical.resources import MEDICAL_DATA, load_validated

CODE_RULES = MEDICAL_DATA / "code_rules.json"
_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4", "v": "5"}
# "stage 3", "stage 3a", "stage III", "end-stage", "end stage", "ESRD"
_STAGE = re.compile(r"\bstage\s*(\d|iv|v|i{1,3})[ab]?\b|\bend[- ]stage\b|\besrd\b", re.IGNORECASE)


@dataclass(frozen=True)
class CodeRules:
    gives_way: dict[str, tuple[tuple[str, ...], bool]]  # code -> (prefixes, same mention only)
    # (code prefixes, the condition's words, the phrases its words do not count in)
    requires_mention: tuple[tuple[tuple[str, ...], re.Pattern, re.Pattern | None], ...]
    # (code prefixes, the words of the variant that excludes them, the words of their own variant)
    contradicted_by: tuple[tuple[tuple[str, ...], re.Pattern, re.Pattern | None], ...]
    stage_conflict: bool
    # (code, prefix groups that each need a code of the note, the code they make together), first match wins
    combines: tuple[tuple[str, tuple[tuple[str, ...], ...], str], ...] = ()


@lru_cache(maxsize=1)
def code_rules() -> CodeRules:
    """The rules of ``code_rules.json`` (read once per process)."""
    data = load_validated(CODE_RULES, MEDICAL_DATA / "code_rules.schema.json")
    requires = tuple(
        (
            tuple(rule["codes"]),
            _words(rule["any_of"]),
            _words(rule["not_within"]) if rule.get("not_within") else None,
        )
        for rule in data["requires_mention"]
    )
    return CodeRules(
        gives_way={
            rule["code"]: (tuple(rule["to"]), rule.get("same_mention", False)) for rule in data["gives_way"]
        },
        requires_mention=requires,
        contradicted_by=tuple(
            (tuple(rule["codes"]), _words(rule["any_of"]), _words(rule["unless"]) if rule["unless"] else None)
            for rule in data["contradicted_by"]
        ),
        stage_conflict=data["stage_conflict"],
        combines=tuple(
            (rule["code"], tuple(tuple(group) for group in rule["with"]), rule["becomes"])
            for rule in data.get("combines", [])
        ),
    )


def _words(phrases: list[str]) -> re.Pattern:
    """A pattern of any of ``phrases`` as whole words, ignoring case."""
    return re.compile(r"\b(?:" + "|".join(re.escape(p) for p in phrases) + r")\b", re.IGNORECASE)


def combined(code: str, codes: list[str]) -> str | None:
    """The code that ``code`` makes together with others of the note's ``codes`` (``combines``), or None:
    "I10" beside "N18.4" is "I12.9"."""
    for own, groups, becomes in code_rules().combines:
        if code == own and all(any(c.startswith(group) for c in codes if c != code) for group in groups):
            return becomes
    return None


def gives_way(code: str, codes: list[str], spans: dict[str, list[tuple[int, int]]] | None = None) -> bool:
    """Whether ``code`` is a catch-all that another of the note's ``codes`` makes redundant. ``spans``: the
    character spans of each code's evidence; a rule with ``same_mention`` needs the other code's evidence to
    overlap this one's ("CKD stage 3" names the stage of that CKD, a "renal cyst" elsewhere is not it)."""
    rule = code_rules().gives_way.get(code)
    if rule is None:
        return False
    prefixes, same_mention = rule
    others = [other for other in codes if other != code and other.startswith(prefixes)]
    if not same_mention or not others:
        return bool(others)
    spans = spans or {}
    return any(
        start < other_end and other_start < end
        for other in others
        for other_start, other_end in spans.get(other, [])
        for start, end in spans.get(code, [])
    )


def lacks_mention(code: str, note: str) -> bool:
    """Whether ``code`` names a condition (``requires_mention``) whose words the ``note`` never uses outside
    the phrases of another condition (``not_within``: "hypertension" in "pulmonary hypertension")."""
    for prefixes, words, not_within in code_rules().requires_mention:
        if code.startswith(prefixes):
            text = not_within.sub(" ", note) if not_within is not None else note
            if words.search(text) is None:
                return True
    return False


def contradicted(code: str, note: str) -> bool:
    """Whether the ``note`` names a variant that excludes ``code`` and not the code's own variant
    (``contradicted_by``)."""
    for prefixes, other, own in code_rules().contradicted_by:
        if code.startswith(prefixes) and other.search(note) is not None:
            if own is None or own.search(note) is None:
                return True
    return False


def stages(text: str) -> set[str]:
    """The stages ``text`` states, as "1".."5" or "end" ("stage IIIb" -> {"3"}, "ESRD" -> {"end"})."""
    return {_ROMAN.get(number.lower(), number) if number else "end" for number in _STAGE.findall(text)}


def stage_conflict(code: str, sentences: list[str]) -> bool:
    """Whether ``code``'s description names a stage that none of its evidence ``sentences`` states while
    they state another ("Chronic kidney disease, stage 5" from "CKD stage 3.")."""
    if not code_rules().stage_conflict:
        return False
    own = stages(describe(code) or "")
    if not own:
        return False
    stated = set().union(*(stages(s) for s in sentences)) if sentences else set()
    return bool(stated) and not (own & stated)
