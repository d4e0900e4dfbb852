"""Safe defaults: login parsing, upload type and size limits, with messages that say how to fix them."""

from __future__ import annotations

import pytest

from apps.auth import parse_auth, resolve_auth
from apps.uploads import check_upload
from core_model.errors import DSuiteError


def test_auth_parses_several_accounts():
    assert parse_auth("alice:s3cret, bob:pa:ss") == [("alice", "s3cret"), ("bob", "pa:ss")]
    assert parse_auth("") is None and parse_auth(None) is None


@pytest.mark.parametrize("spec", ["alice", ":pw", "alice:"])
def test_auth_rejects_entries_without_user_and_password(spec):
    with pytest.raises(DSuiteError, match="user:password"):
        parse_auth(spec)


def test_auth_option_wins_over_environment(monkeypatch):
    monkeypatch.setenv("DSUITE_AUTH", "env:pw")
    assert resolve_auth(None) == [("env", "pw")]
    assert resolve_auth("cli:pw") == [("cli", "pw")]


def test_upload_type_size_and_emptiness(tmp_path, monkeypatch):
    good = tmp_path / "notes.csv"
    good.write_text("note\nchest pain\n")
    assert check_upload(str(good), (".csv", ".jsonl"), "notes") == good
    assert check_upload({"path": str(good)}, (".csv",), "notes") == good
    with pytest.raises(DSuiteError, match=r"must be one of \.jsonl"):
        check_upload(str(good), (".jsonl",), "training records")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DSuiteError, match="is empty"):
        check_upload(str(empty), (".jsonl",), "training records")
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"x" * (1024 * 1024 + 1))
    monkeypatch.setenv("DSUITE_MAX_UPLOAD_MB", "1")
    with pytest.raises(DSuiteError, match="over the 1 MB upload limit"):
        check_upload(str(big), (".jsonl",), "training records")
    with pytest.raises(DSuiteError, match="No file was uploaded"):
        check_upload(None, (".jsonl",), "training records")


def test_serve_refuses_a_bad_login_before_serving():
    from apps.serve import launch

    with pytest.raises(DSuiteError, match="user:password"):
        launch(port=1, block=False, auth="nopassword")
