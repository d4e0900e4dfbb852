"""Fixtures of the app tests: one real `dsuite serve` for the whole package, its client, headless Chromium.

The server runs with an empty adapter registry of its own (``DSUITE_REGISTRY``), so the tests see exactly
the adapters they train. Browser tests use the Debian ``chromium`` binary through Playwright and save a
screenshot of every page they drive: into a scratch folder by default, into ``apps/screenshots`` (the pictures
the README shows) when ``DSUITE_UPDATE_SCREENSHOTS=1``, so a plain test run leaves the tracked files alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO, dsuite_command, free_port, wait_for_http

TRACKED_SCREENSHOTS = REPO / "apps" / "screenshots"
SCREENSHOTS = (
    TRACKED_SCREENSHOTS
    if os.environ.get("DSUITE_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / f"dsuite-screenshots-{os.getpid()}"
)
DATA = Path(__file__).parent / "data"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    """URL of a real `dsuite serve` (the hub with every app) on a free loopback port."""
    port = free_port()
    registry = tmp_path_factory.mktemp("registry")
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "DSUITE_ADAPTERS"}  # one registry variable: no clash
    env["DSUITE_REGISTRY"] = str(registry)
    with log.open("w") as handle:
        process = subprocess.Popen(dsuite_command("serve", "--port", str(port)), env=env, cwd=REPO,
                                   stdout=handle, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        try:
            wait_for_http(url, process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}; server log:\n{log.read_text()[-4000:]}") from exc
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def client(hub_server):
    """A gradio_client connected to the served hub."""
    from gradio_client import Client

    return Client(hub_server, verbose=False)


@pytest.fixture(scope="session")
def browser():
    """A headless Debian Chromium (Playwright, fresh profile); skipped only when chromium is not installed."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Debian chromium is not installed (`apt-get install chromium`, done by .ci/system-deps)")
    from playwright.sync_api import sync_playwright

    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"dsuite-chromium-{os.getpid()}"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=binary, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser):
    """A fresh browser tab, closed after the test."""
    tab = browser.new_page()
    tab.set_default_timeout(120_000)
    yield tab
    tab.close()


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot as ``<SCREENSHOTS>/<name>.png`` and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
