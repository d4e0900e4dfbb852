"""The coder's trained JSON files: atomic writes, round trips, and errors that say how to rebuild them."""

import pytest

from core_model.errors import DSuiteError
from domains.medical.lexicon import Lexicon
from domains.medical.neighbours import NoteNeighbours


def test_lexicon_and_neighbours_round_trip(tmp_path):
    lexicon = Lexicon({"chest pain": {"R07.9": 0.8}, "asthma": {"J45.909": 0.9}})
    lexicon.save(tmp_path / "lexicon.json")
    assert Lexicon.load(tmp_path / "lexicon.json").table == lexicon.table
    index = NoteNeighbours(["a", "b"], [1.0, 2.0], [[0], [0, 1]], [["R07.9"], ["J45.909"]], k=3, power=1.5)
    index.save(tmp_path / "neighbours.json")
    again = NoteNeighbours.load(tmp_path / "neighbours.json")
    assert (again.vocab, again.note_codes, again.k, again.power) == (["a", "b"], index.note_codes, 3, 1.5)
    assert not list(tmp_path.glob("*.tmp"))  # the temporary files were moved into place


def test_missing_or_foreign_files_say_how_to_rebuild(tmp_path):
    with pytest.raises(DSuiteError, match="Lexicon file .* not found. Train it with `dsuite medical"):
        Lexicon.load(tmp_path / "absent.json")
    NoteNeighbours(["a"], [1.0], [[0]], [["R07.9"]]).save(tmp_path / "neighbours.json")
    with pytest.raises(DSuiteError, match="not a version-1 lexicon file; retrain"):
        Lexicon.load(tmp_path / "neighbours.json")
    Lexicon({}).save(tmp_path / "lexicon.json")
    with pytest.raises(DSuiteError, match="neighbour index; retrain"):
        NoteNeighbours.load(tmp_path / "lexicon.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(DSuiteError, match="not a version-1 lexicon"):
        Lexicon.load(tmp_path / "list.json")
