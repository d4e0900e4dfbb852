"""Streamed text never ends in half a character: an emoji cut by the token limit is left out."""

from __future__ import annotations

from core_model.generation import BROKEN, whole_characters


def test_a_reply_cut_inside_an_emoji_ends_before_it(embedded_base):
    tokenizer = embedded_base.tokenizer
    ids = tokenizer("Nice 🙂🌱", add_special_tokens=False)["input_ids"]
    cut = tokenizer.decode(ids[:-1], skip_special_tokens=True)  # the token limit reached inside the 🌱
    assert cut.endswith(BROKEN)  # what the streamer's last flush gave the page
    assert "".join(whole_characters(["Nice ", cut[len("Nice ") :]])) == "Nice 🙂"
    assert list(whole_characters(["Nice 🙂", BROKEN, ""])) == ["Nice 🙂"]  # held back, then dropped
