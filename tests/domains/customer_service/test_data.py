"""The shared dialog data loaders read the real files with the documented counts."""

import pytest

from core_model.errors import DSuiteError
from eval.data import banking77, bitext, clinc150, multiwoz, sgd


def test_banking77_splits_partition_train_and_keep_test():
    train, val, test = banking77.load("train"), banking77.load("validation"), banking77.load("test")
    assert len(train) + len(val) == 10003
    assert len(test) == 3080
    assert {r["label"] for r in test} == set(banking77.categories())
    assert not {r["text"] for r in train} & {r["text"] for r in val}


def test_clinc150_counts_and_oos():
    test = clinc150.load("test")
    assert len(test) == 5500
    assert sum(r["label"] == "oos" for r in test) == 1000
    assert len(clinc150.load("validation", include_oos=False)) == 3000


def test_bitext_split_is_a_stable_partition():
    parts = [bitext.load(s) for s in ("train", "validation", "test")]
    assert sum(map(len, parts)) == 4514
    assert sum(r["label"] == bitext.ESCALATION_INTENT for p in parts for r in p) == 161
    assert bitext.load("test") == parts[2]


def test_multiwoz_user_turns_carry_states():
    dialogue = multiwoz.load_dialogues("test", limit=1)[0]
    turns = multiwoz.user_turns(dialogue)
    assert dialogue["dialogue_id"] == "SNG0073"
    assert turns[0]["state"] == {
        "taxi-destination": "pizza hut fenditton",
        "taxi-departure": "saint johns college",
    }
    assert turns[1]["system"].startswith("What time")


def test_sgd_states_are_lists_of_surface_forms():
    dialogues = sgd.load_dialogues("Payment_1")
    assert len(dialogues) == 36
    first = [t for t in dialogues[0]["turns"] if t["speaker"] == "USER"][0]
    assert first["state"]["Payment_1-receiver"] == ["Amelia"]


@pytest.mark.parametrize("loader", [banking77.load, clinc150.load, bitext.load])
def test_unknown_split_is_refused(loader):
    with pytest.raises(DSuiteError, match="expected one of"):
        loader("dev-typo")
