"""Term extraction with the real spaCy pipeline, against the project's annotated set."""

from __future__ import annotations

from domains.finance.annotations import load_annotated, parse_marked
from domains.finance.extraction import extract, finance_nlp


def _prf(split: str) -> tuple[float, float]:
    tp = fp = fn = 0
    for example in load_annotated(split):
        gold = {(s["start"], s["end"], s["label"]) for s in example["spans"]}
        pred = {(m.start, m.end, m.label) for m in extract(example["text"])}
        tp, fp, fn = tp + len(gold & pred), fp + len(pred - gold), fn + len(gold - pred)
    return tp / (tp + fp), tp / (tp + fn)


def test_precision_and_recall_on_held_out_annotations():
    precision, recall = _prf("test")
    assert precision >= 0.9, precision
    assert recall >= 0.9, recall


def test_extracts_terms_tickers_money_percent_dates():
    text = "Apple (NASDAQ: AAPL) rose 3.5% to $182.40 on March 3, 2024 after its P/E ratio fell; I hold ETFs."
    found = {(m.text, m.label, m.term) for m in extract(text)}
    assert ("AAPL", "TICKER", "") in found
    assert ("3.5%", "PERCENT", "") in found
    assert ("$182.40", "MONEY", "") in found
    assert ("March 3, 2024", "DATE", "") in found
    assert ("P/E ratio", "TERM", "price-to-earnings ratio") in found
    assert ("ETFs", "TERM", "exchange-traded fund") in found


def test_money_does_not_swallow_trailing_comma():
    (money,) = [m for m in extract("I have $10,000, and low risk.") if m.label == "MONEY"]
    assert money.text == "$10,000"


def test_generic_words_and_roles_are_not_terms():
    labels = {m.text for m in extract("The traders said the average price was a good approach.")}
    assert labels == set()


def test_pipeline_is_spacy_with_entities():
    doc = finance_nlp()("Buy an index fund in Q3 2023.")
    assert [(e.text, e.label_) for e in doc.ents] == [("index fund", "TERM"), ("Q3 2023", "DATE")]


def test_parse_marked():
    text, spans = parse_marked("Put [$5|MONEY] in [ETFs|TERM].")
    assert text == "Put $5 in ETFs."
    assert [(text[s["start"] : s["end"]], s["label"]) for s in spans] == [("$5", "MONEY"), ("ETFs", "TERM")]
