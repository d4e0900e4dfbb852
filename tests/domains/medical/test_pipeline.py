"""The medical spaCy components in a user's own pipeline: sections, sentences, mentions, assertion."""

from __future__ import annotations

import spacy

import domains.medical.pipeline  # noqa: F401  (registers the factories)
from domains.medical.text import ClinicalTokenizer, find_sections

NOTE = (
    "CHIEF COMPLAINT: Cough.\n"
    "PAST MEDICAL HISTORY: Hypertension and asthma.\n"
    "FAMILY HISTORY: Father with lung cancer.\n"
    "ASSESSMENT: Pneumonia. No fever. Dr. Smith will see him if vomiting recurs."
)


def test_components_in_a_users_blank_pipeline():
    nlp = spacy.blank("en")
    for name in ("dsuite_sections", "dsuite_clinical_sentences", "dsuite_conditions", "dsuite_context"):
        nlp.add_pipe(name)
    doc = nlp(NOTE)
    found = {span.text.lower(): span._.assertion for span in doc.spans["conditions"]}
    assert found["hypertension"] == "historical"  # section default
    assert found["lung cancer"] == "family"
    assert found["pneumonia"] == "present"
    assert found["fever"] == "negated"
    assert found["vomiting"] == "hypothetical"
    codes = {span.text.lower(): span._.icd_codes for span in doc.spans["conditions"]}
    assert "I10" in codes["hypertension"] and "J18.9" in codes["pneumonia"]


def test_sections_and_sentences():
    names = [s[2] for s in find_sections(NOTE)]
    assert names == ["chief_complaint", "past_medical_history", "family_history", "assessment"]
    nlp = domains.medical.pipeline.build_nlp()
    sentences = [s.text.strip() for s in nlp(NOTE).sents if s.text.strip()]
    assert "Dr. Smith will see him if vomiting recurs." in sentences  # no split after "Dr."
    assert "No fever." in sentences


def test_a_known_section_header_names_no_condition():
    """MTSamples: "HISTORY OF PRESENT ILLNESS:" was coded R69 "Illness, unspecified" in 556 notes. A header
    the sections file knows is not a mention; a problem-list heading it does not know still is."""
    nlp = domains.medical.pipeline.build_nlp()
    doc = nlp("HISTORY OF PRESENT ILLNESS: She has a chronic illness.\nHYPERTENSION: Continue lisinopril.")
    found = [(span.text, span.start_char) for span in doc.spans["conditions"]]
    assert ("ILLNESS", 19) not in found
    assert ("illness", 46) in found and ("HYPERTENSION", 55) in found


def test_tokenizer_keeps_text_and_offsets():
    text = "s/p CABG x3,  BP 120/80.\nTemp 38.5 C; doesn't smoke."
    doc = ClinicalTokenizer(spacy.blank("en").vocab)(text)
    assert doc.text == text
    assert [t.text for t in doc][:3] == ["s", "/", "p"]
    assert "38.5" in [t.text for t in doc]


def test_fast_token_and_sentence_helpers_match_spacy():
    from domains.medical.text import doc_text, sentence_bounds, token_texts

    users = spacy.blank("en")  # spaCy's own tokenizer: the helpers read the doc's arrays
    for name in ("dsuite_sections", "dsuite_clinical_sentences"):
        users.add_pipe(name)
    for nlp in (domains.medical.pipeline.build_nlp(), users):
        doc = nlp(NOTE + "\n\n  Trailing  spaces ")
        assert token_texts(doc) == [t.text for t in doc]
        assert sentence_bounds(doc) == [(s.start, s.end) for s in doc.sents]
        assert doc_text(doc) == doc.text
