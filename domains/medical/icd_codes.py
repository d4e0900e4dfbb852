"""ICD-10-CM codes, descriptions and hierarchy from ``simple-icd-10-cm``, normalised and cached.

Importing ``simple_icd_10_cm`` parses its whole XML release (seconds, more on a busy CPU), so the codes,
descriptions and parents are extracted once into a JSON table in the suite's cache folder and read from
there; the package is imported only to build that table and the inclusion terms.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from importlib import metadata

from core_model.paths import dsuite_home
from domains.medical.artifacts import write_json

log = logging.getLogger(__name__)


def normalize(code: str) -> str:
    """Upper case with the dot (``s22.49xa`` -> ``S22.49XA``; ``N281`` -> ``N28.1``)."""
    code = code.strip().upper()
    if "." not in code and len(code) > 3 and code[0].isalpha() and code[1:3].isalnum():
        code = code[:3] + "." + code[3:]
    return code


def package_version() -> str:
    """The installed ``simple-icd-10-cm`` version (part of every cache key)."""
    try:
        return metadata.version("simple-icd-10-cm")
    except metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def _table() -> dict[str, list]:
    """code -> [description, parent or None], for every code below block level, in release order."""
    path = dsuite_home() / "medical" / f"icd10cm_table_{package_version()}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    log.info("extracting the ICD-10-CM table from simple-icd-10-cm (once)")
    import simple_icd_10_cm as icd

    table = {}
    for code in icd.get_all_codes(True):
        if icd.is_chapter_or_block(code):
            continue
        parent_code = icd.get_parent(code)
        keep_parent = parent_code and not icd.is_chapter_or_block(parent_code)
        table[code] = [icd.get_description(code), parent_code if keep_parent else None]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, table)
    return table


def is_valid(code: str) -> bool:
    """Whether ``code`` (normalised) is an ICD-10-CM category, subcategory or 7th-character code."""
    return code in _table()


def all_codes() -> list[str]:
    """Every code below block level, in release order."""
    return list(_table())


def describe(code: str) -> str:
    """The code's description, or an empty string for a code ICD-10-CM does not know."""
    entry = _table().get(code)
    return entry[0] if entry else ""


def parent(code: str) -> str | None:
    """The parent code (None at category level or for an unknown code)."""
    entry = _table().get(code)
    return entry[1] if entry else None


@lru_cache(maxsize=1)
def _subdivided() -> frozenset[str]:
    return frozenset(entry[1] for entry in _table().values() if entry[1])


def is_billable(code: str) -> bool:
    """Whether ``code`` is a valid ICD-10-CM code with no subdivisions (a header such as ``K80`` is not:
    a claim needs its most specific code, ``K80.50``)."""
    return is_valid(code) and code not in _subdivided()


def ancestors(code: str) -> list[str]:
    """The code's parents up to its category, nearest first (``K80.50`` -> ``K80.5``, ``K80``)."""
    found, current = [], parent(code)
    while current:
        found.append(current)
        current = parent(current)
    return found


def category(code: str) -> str:
    """The 3-character category of a code (``I21.9`` -> ``I21``)."""
    return code.split(".")[0]


def inclusion_terms() -> dict[str, list[str]]:
    """Code -> its inclusion terms ("Fever NOS", "Pyrexia NOS", ...); imports the package (slow)."""
    import simple_icd_10_cm as icd

    return {code: list(icd.get_inclusion_term(code)) for code in all_codes() if icd.get_inclusion_term(code)}
