"""`dsuite serve` starts a real Gradio server (the hub) that answers through gradio_client."""

from __future__ import annotations

import pytest


def test_server_answers_capital_of_france(client):
    answer, card = client.predict("What is the capital of France?", 24, api_name="/chat")
    assert "Paris" in answer
    assert "Answered by" in card and "Latency" in card


def test_server_rejects_an_empty_message(client):
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", 16, api_name="/chat")


def test_server_rejects_an_over_long_message(client):
    with pytest.raises(Exception, match="at most 4000"):
        client.predict("word " * 1000, 16, api_name="/chat")


def test_server_binds_loopback_only(hub_server):
    assert hub_server.startswith("http://127.0.0.1:")
