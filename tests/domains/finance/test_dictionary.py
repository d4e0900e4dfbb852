"""The merged term dictionary: size, lookups by synonym/abbreviation, clear errors."""

from __future__ import annotations

import pytest

from core_model.errors import DSuiteError
from domains.finance.dictionary import load_dictionary, normalize


def test_dictionary_holds_over_5000_defined_terms():
    stats = load_dictionary().stats()
    assert stats["entries"] >= 5000
    assert stats["with_definition"] == stats["entries"]
    assert stats["by_source"]["fibo"] == 6004
    assert stats["by_source"]["glossary"] >= 140


@pytest.mark.parametrize(
    ("query", "term"),
    [
        ("P/E", "price-to-earnings ratio"),
        ("price earnings ratio", "price-to-earnings ratio"),
        ("ETF", "exchange-traded fund"),
        ("exchange traded fund", "exchange-traded fund"),
        ("RSI", "relative strength index"),
        ("Stop Loss", "stop-loss order"),
    ],
)
def test_lookup_by_synonym_and_abbreviation(query, term):
    assert load_dictionary().define(query).term == term


def test_fibo_terms_are_found_in_place():
    entry = load_dictionary().define("bond")
    assert entry.source == "fibo"
    assert entry.ref.startswith("https://spec.edmcouncil.org/fibo/")


def test_unknown_term_error_names_it_and_suggests():
    with pytest.raises(DSuiteError, match="No dictionary entry for 'index fundz'"):
        load_dictionary().define("index fundz")


def test_normalize():
    assert normalize("  Price-to-Earnings   Ratio. ") == "price to earnings ratio"
