"""Clinical abbreviations read as written out for the full coder (evidence kept on the note's own words), and
the assertion rules that MTSamples showed missing (risks discussed, long denied lists)."""

from __future__ import annotations

import pytest

from domains.medical.abbreviations import abbreviations, expand
from domains.medical.coder import get_coder, validate_result

SHORT = "PAST MEDICAL HISTORY: HTN, CAD, GERD and DM.\nASSESSMENT: UTI."
LONG = (
    "PAST MEDICAL HISTORY: hypertension, coronary artery disease, gastroesophageal reflux disease and "
    "diabetes mellitus.\nASSESSMENT: urinary tract infection."
)


def test_expansion_maps_offsets_back_to_the_abbreviation():
    text = "PMH: HTN, CAD. Sat 98% on RA. Deep vein thrombosis (DVT). htn?"
    expanded = expand(text)
    assert expanded.text.startswith("PMH: hypertension, coronary artery disease. Sat 98% on RA.")
    assert "(DVT)" in expanded.text  # defined just before: left alone
    assert expanded.text.endswith("htn?")  # case as written only
    for words, original in (("hypertension", "HTN"), ("artery", "CAD"), ("coronary artery disease", "CAD")):
        start = expanded.text.index(words)
        begin, end = expanded.to_original(start, start + len(words))
        assert text[begin:end] == original
    start = expanded.text.index("Sat 98%")  # text after a replacement keeps its own offsets
    assert expanded.to_original(start, start + 7) == (text.index("Sat 98%"), text.index("Sat 98%") + 7)
    assert expand("no abbreviations here").edits == []


def test_a_plural_abbreviation_reads_as_its_condition():
    expanded = expand("Recurrent UTIs; two TIAs. UTIS and TIAx are no abbreviations.")
    assert expanded.text.startswith("Recurrent urinary tract infection; two transient ischemic attack.")
    assert expanded.text.endswith("UTIS and TIAx are no abbreviations.")
    start = expanded.text.index("urinary")
    assert expanded.to_original(start, start + len("urinary tract infection")) == (10, 14)  # "UTIs"
    assert set(abbreviations()).isdisjoint({f"{term}s" for term in abbreviations()})  # no plural is another


def test_the_table_is_valid_and_leaves_ambiguous_abbreviations_out():
    table = abbreviations()
    assert table["HTN"] == "hypertension"
    assert not {"PE", "RA", "MS", "CP", "CA", "ED", "HA"} & set(table)


@pytest.fixture(scope="module")
def coded() -> tuple[dict, dict]:
    coder = get_coder("full")
    return coder.code(SHORT, "short"), coder.code(LONG, "long")


def test_abbreviations_get_the_codes_of_the_words_they_stand_for(coded):
    short, long = coded
    validate_result(short)
    short_codes, long_codes = {c["code"] for c in short["codes"]}, {c["code"] for c in long["codes"]}
    assert {"I10", "I25.10", "K21.9", "E11.9", "N39.0"} <= long_codes
    assert {"I10", "I25.10", "K21.9", "E11.9", "N39.0"} <= short_codes, short_codes
    for code in short["codes"]:  # evidence quotes the note itself, at its own offsets
        for evidence in code["evidence"]:
            assert SHORT[evidence["start"] : evidence["end"]] == evidence["text"]
            assert "hypertension" not in evidence["text"] and "hypertension" not in evidence["sentence"]
    hypertension = next(c for c in short["codes"] if c["code"] == "I10")
    assert {e["text"] for e in hypertension["evidence"]} == {"HTN"}


def test_a_denied_abbreviation_is_not_coded():
    result = get_coder("full").code("He denies HTN. Saturation 98% on RA.", "n")
    assert "I10" not in {c["code"] for c in result["codes"]}
    assert [(e["text"], e["assertion"]) for e in result["excluded"]] == [("HTN", "negated")]


def test_risks_discussed_and_long_denied_lists_are_not_coded():
    """A consent paragraph lists risks, and a review of systems denies a long list: none of it is coded
    (found by coding MTSamples, where these two gave most of the false codes)."""
    coder = get_coder("full")
    for trigger in ("Risks of", "Risk of"):
        sentence = f"{trigger} anesthesia, bleeding, infection, pain, MI, DVT, and PE were discussed."
        risks = coder.code(sentence, "r")
        assert risks["codes"] == [], trigger
        assert {e["assertion"] for e in risks["excluded"]} == {"hypothetical"}
        assert f"'{trigger.lower()}'" in risks["excluded"][0]["reason"].lower()
    denied = coder.code(
        "She denies liver disease, kidney disease, cirrhosis, hepatitis, diabetes mellitus, thyroid disease, "
        "bleeding disorders, prior DVT, HIV and gout.",
        "d",
    )
    assert not [c["code"] for c in denied["codes"] if c["code"][:3] in ("I82", "K76", "E11", "N28", "R58")]
    assert ("DVT", "negated") in {(e["text"], e["assertion"]) for e in denied["excluded"]}
