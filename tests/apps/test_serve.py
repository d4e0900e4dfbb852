"""`dsuite serve` starts a real Gradio server that answers through gradio_client."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import dsuite_command, free_port, wait_for_http


@pytest.fixture(scope="module")
def server():
    port = free_port()
    process = subprocess.Popen(
        dsuite_command("serve", "--port", str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_server_answers_capital_of_france(server):
    from gradio_client import Client

    client = Client(server, verbose=False)
    answer = client.predict("What is the capital of France?", 64, api_name="/chat")
    assert "Paris" in str(answer)


def test_server_rejects_an_empty_message(server):
    from gradio_client import Client

    client = Client(server, verbose=False)
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", 64, api_name="/chat")
