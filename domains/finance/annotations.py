"""The project's annotated term-extraction set (``data/finance/terms_annotated.jsonl``).

Sentences are stored with inline markup, ``I hold [ETFs|TERM] worth [$5,000|MONEY]``; ``parse_marked``
turns one into plain text plus gold spans (character offsets).
"""

from __future__ import annotations

import re

from core_model.errors import DSuiteError

ANNOTATED_FILE = "terms_annotated.jsonl"
ANNOTATED_SCHEMA = "terms_annotated.schema.json"
MARK = re.compile(r"\[([^\]|]+)\|([A-Z]+)\]")


def parse_marked(marked: str) -> tuple[str, list[dict]]:
    """Plain text and gold spans ``{"start", "end", "label", "text"}`` from inline markup.

    Raises:
        DSuiteError: a stray bracket is left after parsing.
    """
    text, spans, cursor = [], [], 0
    length = 0
    for match in MARK.finditer(marked):
        before = marked[cursor : match.start()]
        text.append(before)
        length += len(before)
        span_text, label = match.group(1), match.group(2)
        spans.append({"start": length, "end": length + len(span_text), "label": label, "text": span_text})
        text.append(span_text)
        length += len(span_text)
        cursor = match.end()
    text.append(marked[cursor:])
    plain = "".join(text)
    if "|" in plain and re.search(r"\|[A-Z]+\]", plain):
        raise DSuiteError(f"Unbalanced markup in annotated sentence: {marked!r}. Use [span|LABEL].")
    return plain, spans


def load_annotated(split: str = "all") -> list[dict]:
    """Annotated examples ``{"id", "split", "text", "spans"}`` of ``split`` (``dev``, ``test`` or ``all``).

    Raises:
        DSuiteError: unknown split.
    """
    from domains.finance.resources import validated_jsonl

    if split not in ("dev", "test", "all"):
        raise DSuiteError(f"Annotated term set split must be dev, test or all; got {split!r}.")
    rows = []
    for record in validated_jsonl(ANNOTATED_FILE, ANNOTATED_SCHEMA):
        if split != "all" and record["split"] != split:
            continue
        text, spans = parse_marked(record["marked"])
        rows.append({"id": record["id"], "split": record["split"], "text": text, "spans": spans})
    return rows
