"""The full coder's extra sources: neighbour votes, lexicon statistics, sentence assertion, ranking rules."""

from __future__ import annotations

import json

import pytest

from core_model.errors import DSuiteError
from domains.medical.lexicon import Lexicon
from domains.medical.neighbours import NoteNeighbours

TRAIN = [
    ("Renal colic with hematuria; ultrasound showed a kidney stone.", ["N20.0", "R31.9"]),
    ("Renal colic and flank pain; a ureteral stone was found.", ["N20.1", "R10.9"]),
    ("Community acquired pneumonia with fever and productive cough.", ["J18.9", "R50.9"]),
    ("Pneumonia of the right lower lobe; fever; cough for three days.", ["J18.1", "R50.9", "R05.9"]),
    ("Type 2 diabetes mellitus and hypertension, on metformin.", ["E11.9", "I10"]),
]


def test_neighbours_vote_for_the_codes_of_similar_notes(tmp_path):
    index = NoteNeighbours.fit(TRAIN, k=2, min_df=1)
    votes, best = index.votes("Fever and cough; chest film shows pneumonia.")
    assert 0 < best <= 1
    assert max(votes, key=votes.get) == "R50.9"  # both pneumonia notes carry it
    assert abs(sum(v for c, v in votes.items() if c in {"R50.9"}) - 1.0) < 1e-9
    assert set(votes) <= {"J18.9", "R50.9", "J18.1", "R05.9"}
    path = tmp_path / "nn.json"
    index.save(path)
    loaded = NoteNeighbours.load(path)
    assert loaded.votes("Fever and cough; chest film shows pneumonia.") == (votes, best)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert set(saved) == {"format", "k", "power", "vocab", "idf", "notes"}
    assert all(set(note) == {"grams", "codes"} for note in saved["notes"])  # n-gram ids, no note text
    assert NoteNeighbours.fit([], k=3).votes("anything") == ({}, 0.0)


def test_neighbour_file_errors_say_how_to_fix(tmp_path):
    with pytest.raises(DSuiteError, match="train-ranker"):
        NoteNeighbours.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 99}', encoding="utf-8")
    with pytest.raises(DSuiteError, match="train-ranker"):
        NoteNeighbours.load(bad)


def test_lexicon_matches_agree_with_score():
    lexicon = Lexicon.fit(TRAIN * 2, min_pair=2)
    text = "Renal colic; hematuria; renal ultrasound."
    matches = lexicon.matches(text)
    assert matches and lexicon.score(text) == {c: (m.value, m.gram, m.offsets) for c, m in matches.items()}
    for match in matches.values():
        assert match.count >= 1 and match.value <= match.top2 and match.value <= match.noisy_or <= 1
        assert text[match.offsets[0] : match.offsets[1]].lower().startswith(match.gram.split()[0][:4])


def test_sentence_assertion_is_conservative():
    from domains.medical.context import sentence_assertion
    from domains.medical.pipeline import default_nlp
    from domains.medical.text import sentence_bounds

    nlp = default_nlp()
    doc = nlp("No fever or cough. She has pneumonia.\nFAMILY HISTORY: Diabetes in her father.")
    rules = nlp.get_pipe("dsuite_context").rules
    statuses = [sentence_assertion(doc, s, e, rules) for s, e in sentence_bounds(doc)]
    assert statuses[0] == "negated" and statuses[1] == "present"
    assert statuses[-1] == "family"


def test_full_coder_outputs_only_codes_with_evidence():
    from domains.medical.coder import get_coder, validate_result

    coder = get_coder("full")
    note = (
        "A 45-year-old man with renal colic and hematuria. Ultrasound showed hydronephrosis.\n"
        "He denies fever. Treatment with analgesics."
    )
    ranked, _ = coder.rank(note)
    assert ranked and all(c.rankable() for c, _ in ranked)
    result = coder.code(note, "n")
    validate_result(result)
    without_evidence = {c.code for c, _ in ranked if not c.coded_evidence()}
    assert without_evidence, "neighbour votes should rank codes that no phrase names"
    assert not without_evidence & {c["code"] for c in result["codes"]}
    assert {c["code"] for c in result["codes"]} == {c.code for c, _ in coder.assigned(ranked, note)}
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)
