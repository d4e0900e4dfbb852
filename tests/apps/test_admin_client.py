"""The adapter admin through gradio_client: train → evaluate → register → the hub routes to it (hot add)."""

from __future__ import annotations

import pytest

from tests.apps.conftest import DATA


@pytest.fixture(scope="module")
def astro(client):
    """Train the ``astro`` adapter through the admin API (one optimizer step: the point is the path)."""
    from gradio_client import handle_file

    status, curve, table = client.predict(handle_file(str(DATA / "astronomy.jsonl")), "astro", "tiny", 1,
                                          api_name="/admin_train")
    return status, curve, table


def test_train_registers_and_evaluates(astro):
    status, curve, table = astro
    assert "Registered **astro@1**" in status
    assert "held-out loss per token on " in status and "(lower is better): base " in status
    assert " -> adapter " in status
    assert "the trainer's held-out loss" in status
    assert any(row[0] == "astro@1" for row in table["data"])


def test_hub_routes_to_the_new_adapter_without_restart(client, astro):
    answer, card = client.predict("How far is the Moon from Earth?", 8, api_name="/chat")
    assert "**Answered by** `astro@1`" in card
    assert isinstance(answer, str)


def test_registry_details_and_compare(client, astro):
    meta, card = client.predict("astro", api_name="/admin_details")
    assert meta["key"] == "astro@1" and meta["base_fingerprint"]
    assert "astronomy.jsonl" in card
    base_answer, adapter_answer = client.predict("What is a comet?", "astro", 8, api_name="/admin_compare")
    assert isinstance(base_answer, str) and isinstance(adapter_answer, str)


def test_rollback_without_an_earlier_version_is_refused(client, astro):
    with pytest.raises(Exception, match="no earlier version"):
        client.predict("astro", api_name="/admin_rollback")


def test_rollback_of_a_blank_name_asks_for_an_adapter(client):
    for name in ("   ", "@3"):
        with pytest.raises(Exception, match="Choose an adapter to roll back"):
            client.predict(name, api_name="/admin_rollback")


def test_train_rejects_a_wrong_file_type(client):
    from gradio_client import handle_file

    with pytest.raises(Exception, match=r"(one of these formats|must be one of).*\.jsonl"):
        client.predict(handle_file(str(DATA / "not_jsonl.txt")), "bad", "tiny", 1, api_name="/admin_train")


def test_train_rejects_a_malformed_record_naming_its_line(client):
    from gradio_client import handle_file

    with pytest.raises(Exception, match=r"malformed\.jsonl:2"):
        client.predict(handle_file(str(DATA / "malformed.jsonl")), "bad", "tiny", 1, api_name="/admin_train")


def test_details_of_an_unknown_adapter_names_what_exists(client, astro):
    with pytest.raises(Exception, match="No adapter named 'nope'"):
        client.predict("nope", api_name="/admin_details")


def test_rollback_serves_the_earlier_version_and_says_how_to_undo(client):
    from gradio_client import handle_file

    for version in (1, 2):
        status, _, _ = client.predict(handle_file(str(DATA / "astronomy.jsonl")), "comet", "tiny", 1,
                                      api_name="/admin_train")
        assert f"Registered **comet@{version}**" in status
    status, table = client.predict("comet@2", api_name="/admin_rollback")
    assert status == ("`comet@latest` now serves **comet@1** (was comet@2; "
                      "`undo: dsuite adapters alias comet latest 2`).")
    assert ["comet@1", "1, 2"] in [row[:2] for row in table["data"]]  # both versions kept
