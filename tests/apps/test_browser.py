"""The apps in a real headless Debian Chromium: open, type, click, wait for the answer, save a screenshot."""

from __future__ import annotations

import re

import pytest

from tests.apps.conftest import DATA, screenshot

pytestmark = pytest.mark.browser


def open_hub(page, url: str) -> None:
    page.goto(url)
    page.get_by_role("textbox").first.wait_for()


def ask_hub(page, text: str, max_new_tokens: int = 16) -> str:
    """Type ``text`` into the hub's chat, send it, wait for the route card's final latency; return the card."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Ask anything").click()
    page.get_by_text("Additional Inputs").click()
    tokens = page.get_by_label("number input for Max new tokens")
    tokens.fill(str(max_new_tokens))
    tokens.press("Enter")
    box = page.get_by_role("textbox").first
    box.fill(text)
    box.press("Enter")
    card = page.locator("#route-card")
    expect(card).to_contain_text(re.compile(r"Latency [0-9.]+ s"), timeout=180_000)
    return card.inner_text()


def test_hub_routes_answers_and_shows_the_route(page, hub_server):
    from playwright.sync_api import expect

    open_hub(page, hub_server)
    expect(page.get_by_role("tab", name="Adapter admin")).to_be_visible()
    card = ask_hub(page, "What is the capital of France?", 24)
    assert "Answered by" in card and "Router confidence" in card
    expect(page.locator("[data-testid='bot']").last).to_contain_text("Paris")
    screenshot(page, "hub")


def test_admin_trains_an_adapter_that_the_hub_serves_without_restart(page, hub_server):
    from playwright.sync_api import expect

    open_hub(page, hub_server)
    page.get_by_role("tab", name="Adapter admin").click()
    page.locator("#train-file input[type=file]").set_input_files(str(DATA / "cooking.jsonl"))
    page.get_by_label("Adapter name").fill("cooking")
    page.get_by_label("Max steps (0 = preset)").fill("1")
    page.locator("#train-btn").click()
    status = page.locator("#train-status")
    expect(status).to_contain_text("Registered cooking@1", timeout=240_000)
    expect(status).to_contain_text("heldout_nll_adapter")
    expect(page.locator("#registry")).to_contain_text("cooking@1")
    screenshot(page, "admin")
    card = ask_hub(page, "How long should I boil an egg?", 8)
    assert "Answered by cooking@1" in card, card
    screenshot(page, "hub_hot_add")
