"""Laterality and catch-all codes in the coder's output: the side the note names, no redundant codes."""

from __future__ import annotations

from domains.medical.coder import get_coder, gives_way
from domains.medical.laterality import other_side, side_of_evidence, sides_named, unspecified_side


def test_sides_are_read_from_text_and_from_icd_descriptions():
    assert sides_named("Pain in the RIGHT knee") == {"right"}
    assert sides_named("bilateral knee pain") == {"left", "right"}
    assert sides_named("no side here, leftover food") == set()
    assert other_side("M25.562") == "M25.561" and other_side("H43.11") == "H43.12"
    assert unspecified_side("M25.561") == "M25.569" and unspecified_side("R10.9") is None
    assert other_side("I10") is None


def test_a_code_of_one_side_moves_to_the_side_its_evidence_names():
    assert side_of_evidence("M25.562", ["He has pain in the right knee."]) == "M25.561"
    assert side_of_evidence("M25.562", ["Pain in the left knee."]) == "M25.562"
    assert side_of_evidence("M25.562", ["Knee pain, right worse than left."]) == "M25.562"  # both named: kept
    assert side_of_evidence("M25.562", ["Knee pain."]) == "M25.562"  # no side named: kept


def test_the_coder_codes_the_named_side_and_drops_the_unspecified_side():
    note = "He has pain in the right knee after a fall."
    codes = [c["code"] for c in get_coder("full").code(note)["codes"]]
    assert "M25.561" in codes
    assert "M25.562" not in codes and "M25.569" not in codes


def test_catch_all_codes_give_way_to_specific_ones():
    """R52 "Pain, unspecified" has an Excludes1 note for pain by site; R69 "Illness, unspecified" is for a
    note with no diagnosis."""
    assert gives_way("R52", ["R52", "R10.9"]) and gives_way("R52", ["R52", "M25.561"])
    assert not gives_way("R52", ["R52", "R53.83"])  # fatigue is not pain by site
    assert gives_way("R69", ["R69", "J44.9"]) and not gives_way("R69", ["R69"])
    coder = get_coder("full")
    note = "Patient complains of chest pain and pain."
    ranked = [cand.code for cand, score in coder.rank(note)[0] if score >= coder.threshold]
    assert "R52" in ranked and "R07.9" in ranked  # the ranker offers both
    codes = [c["code"] for c in coder.code(note)["codes"]]
    assert "R07.9" in codes and "R52" not in codes
