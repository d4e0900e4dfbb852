"""Code-level consistency (``code_rules.json``): stages the evidence contradicts, conditions the note never
names, catch-alls beside the specific code; as functions and through the real full coder."""

from __future__ import annotations

import pytest

from domains.medical.code_rules import (
    combined,
    contradicted,
    gives_way,
    lacks_mention,
    stage_conflict,
    stages,
)
from domains.medical.coder import get_coder


def test_stages_read_digits_roman_numerals_and_end_stage():
    assert stages("CKD stage 3.") == {"3"}
    assert stages("chronic kidney disease stage IIIb and a stage 2 pressure ulcer") == {"3", "2"}
    assert stages("end-stage renal disease on dialysis") == {"end"}
    assert stages("ESRD") == {"end"}
    assert stages("staged procedure, upstage, no stage given") == set()


def test_a_stage_the_evidence_contradicts_is_a_conflict():
    assert stage_conflict("N18.5", ["CKD stage 3."])  # Chronic kidney disease, stage 5
    assert stage_conflict("N18.6", ["Chronic kidney disease stage 4."])  # End stage renal disease
    assert stage_conflict("N18.4", ["ESRD on hemodialysis."])
    assert not stage_conflict("N18.3", ["CKD stage 3."])
    assert not stage_conflict("N18.6", ["ESRD on hemodialysis."])
    assert not stage_conflict("N18.5", ["Chronic kidney disease."])  # no stage stated: the ranker decides
    assert not stage_conflict("N18.9", ["CKD stage 3."])  # the code names no stage


def test_a_code_that_names_a_condition_needs_it_in_the_note():
    assert lacks_mention("I12.9", "CKD stage 3.")
    assert not lacks_mention("I12.9", "HTN. CKD stage 3.")
    assert not lacks_mention("I12.9", "Hypertensive nephropathy.")
    assert lacks_mention("E11.22", "Chronic kidney disease.")
    assert not lacks_mention("E11.9", "HTN, DM2.") and not lacks_mention("E11.9", "DMII on metformin.")
    assert not lacks_mention("E11.22", "Type 2 DM with nephropathy.")
    assert not lacks_mention("N18.3", "CKD stage 3.")  # no rule for it
    # the word inside another condition's name does not count
    assert lacks_mention("I10", "Echo: moderate pulmonary hypertension.")
    assert not lacks_mention("I10", "Pulmonary hypertension and systemic hypertension.")
    assert lacks_mention("E11.9", "Central diabetes insipidus after surgery.")
    assert lacks_mention("R40.243", "PMH: COPD, CHF.") and not lacks_mention("R40.2431", "GCS 5 on arrival.")


def test_an_old_infarction_and_a_personal_history_need_the_past_in_the_note():
    assert lacks_mention("I25.2", "Rule out MI.")
    assert lacks_mention("I25.2", "A 67-year-old man with acute MI.")  # "old" of an age is no old infarction
    assert not lacks_mention("I25.2", "Old inferior MI on ECG.") and not lacks_mention("I25.2", "Hx of MI.")
    assert lacks_mention("Z87.440", "UTI.") and not lacks_mention("Z87.440", "History of recurrent UTIs.")
    assert not lacks_mention("Z87.891", "Ex-smoker of a pack a day.")
    assert not lacks_mention("Z85.3", "Breast cancer, s/p mastectomy in 2015.")


def test_prostate_and_other_specified_diabetes_codes_need_their_words():
    assert lacks_mention("N40.0", "History of BPPV.")  # positional vertigo shares only "benign" with BPH
    assert not lacks_mention("N40.0", "BPH on tamsulosin.")
    assert not lacks_mention("N40.1", "Enlarged prostate.")
    assert lacks_mention("E13.9", "IDDM on insulin pump.")  # insulin use names no other kind of diabetes
    assert not lacks_mention("E13.9", "Diabetes after total pancreatectomy.")
    assert not lacks_mention("E13.65", "MODY 2 with hyperglycemia.")


def test_an_st_elevation_infarction_code_is_contradicted_by_nstemi():
    assert contradicted("I21.3", "Patient with NSTEMI, admitted to CCU.")
    assert contradicted("I21.19", "Non-ST elevation myocardial infarction of the inferior wall.")
    assert not contradicted("I21.3", "Inferior STEMI.") and not contradicted("I21.4", "NSTEMI.")
    assert contradicted("I21.3", "Non-STEMI on admission.")  # "STEMI" inside "non-STEMI" is no STEMI
    assert contradicted("I21.3", "Prior STEMI in 2015, now NSTEMI.")  # the old one is I25.2


def test_hypertension_beside_kidney_or_heart_failure_codes_becomes_the_combination():
    assert combined("I10", ["I10", "N18.4"]) == "I12.9" and combined("I10", ["I10", "N18.6"]) == "I12.0"
    assert combined("I10", ["I10", "I50.9"]) == "I11.0"
    assert combined("I10", ["I10", "I50.22", "N18.30"]) == "I13.0"
    assert combined("I10", ["I10", "I50.9", "N18.5"]) == "I13.2"
    assert combined("I10", ["I10", "E11.9", "N28.9"]) is None and combined("N18.4", ["I10", "N18.4"]) is None
    assert gives_way("I12.9", ["I12.9", "I13.0"]) and not gives_way("I13.0", ["I12.9", "I13.0"])


def test_a_diabetes_type_the_note_excludes_is_a_contradiction():
    assert contradicted("E11.9", "Type 1 diabetes with diabetic ketoacidosis.")
    assert contradicted("E10.9", "Known T2DM on metformin.")
    assert not contradicted("E11.9", "Type 1 diabetes in her son; she has diabetes mellitus type 2.")
    assert not contradicted("E11.9", "Insulin-dependent diabetes mellitus.")  # insulin use is no type 1
    assert not contradicted("E11.9", "Type 1 respiratory failure. Diabetes.")  # "type 1" of something else
    assert not contradicted("I10", "Type 1 diabetes.")


def test_catch_alls_give_way_to_the_specific_code_of_the_same_mention():
    same = {"N18.9": [(0, 3)], "N28.9": [(0, 3)], "N18.3": [(0, 12)], "I10": [(14, 17)]}
    assert gives_way("N18.9", ["N18.9", "N18.3"], same) and gives_way("N28.9", ["N28.9", "N18.3"], same)
    assert not gives_way("N18.9", ["N18.9", "I10"], same)
    elsewhere = {"N28.9": [(30, 41)], "N18.3": [(0, 12)]}  # "CKD stage 3. ... renal cyst"
    assert not gives_way("N28.9", ["N28.9", "N18.3"], elsewhere)
    assert gives_way("R69", ["R69", "J44.9"]) and gives_way("R52", ["R52", "R10.9"])  # any mention
    assert gives_way("I21.9", ["I21.9", "I25.2"], {"I21.9": [(7, 9)], "I25.2": [(7, 9)]})  # "Hx of MI"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("note", "wanted", "unwanted"),
    [
        ("CKD stage 3.", {"N18.30"}, {"N18.3", "N18.5", "N18.9", "I12.9", "N28.9"}),
        ("Patient with chronic kidney disease stage 4.", {"N18.4"}, {"N18.5", "N18.9", "I12.9"}),
        ("Hypertension. Chronic kidney disease stage 4.", {"N18.4", "I12.9"}, {"N18.5", "N18.9"}),
        ("Acute kidney injury on CKD stage 4.", {"N17.9", "N18.4"}, {"N18.9", "N18.5"}),
        ("Type 1 diabetes with diabetic ketoacidosis.", {"E10.10"}, {"E11.9"}),
        ("Hx of HTN, HLD, T2DM on metformin.", {"I10", "E11.9", "E78.5"}, {"E10.9"}),
        ("Rule out MI.", set(), {"I25.2"}),
        ("History of MI.", {"I25.2"}, {"I21.9"}),
        ("UTI.", {"N39.0"}, {"Z87.440"}),
        ("HTN, DM2.", {"I10", "E11.9"}, {"E10.9"}),
        ("Patient with NSTEMI, admitted to CCU.", {"I21.4"}, {"I21.3", "I25.2"}),
        ("Non-STEMI, troponin rising.", {"I21.4"}, {"I21.3"}),  # "non" there is no denial
        ("Hypertension. Chronic kidney disease stage 3, creatinine 1.8.", {"I12.9", "N18.30"}, {"I10"}),
        ("HTN, CHF, CKD stage 4.", {"I13.0", "I50.9", "N18.4"}, {"I10", "I12.9", "I11.0"}),
        ("History of BPPV, dizzy on turning head.", {"H81.10"}, {"N40.0"}),
        ("IDDM on insulin pump.", {"E11.9"}, {"E10.9", "E13.9"}),
    ],
)
def test_the_full_coder_codes_the_stated_stage_only(note, wanted, unwanted):
    codes = {c["code"] for c in get_coder("full").code(note, "n")["codes"]}
    assert wanted <= codes and not codes & unwanted, codes
