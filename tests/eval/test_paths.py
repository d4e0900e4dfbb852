"""Shared data paths: clear errors for a missing folder and for malformed files (file and line named)."""

from __future__ import annotations

import pytest

from core_model.errors import DSuiteError
from eval.data.paths import DATASETS_ENV, dataset_dir, datasets_root, read_json, read_jsonl


def test_missing_root_names_the_folder_and_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(DATASETS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DSuiteError, match=rf"'{tmp_path / 'nowhere'}' not found\. Set {DATASETS_ENV}"):
        datasets_root()


def test_missing_dataset_folder_names_it(monkeypatch, tmp_path):
    monkeypatch.setenv(DATASETS_ENV, str(tmp_path))
    with pytest.raises(DSuiteError, match="medical/codiesp_en"):
        dataset_dir("medical/codiesp_en")


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": 1}\n\n{"id": 2,\n')
    rows = read_jsonl(path)
    assert next(rows) == {"id": 1}
    with pytest.raises(DSuiteError, match=rf"{path}:3: not valid JSON"):
        next(rows)
    path.write_text('{"id": 1}\n[1, 2]\n')
    with pytest.raises(DSuiteError, match=rf"{path}:2: expected a JSON object, got list"):
        list(read_jsonl(path))


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(DSuiteError, match=rf"{path}:4: not valid JSON"):
        read_json(path)
