"""Errors shown on a page speak of the page: the uploaded file by its name, the page's controls, not flags."""

from __future__ import annotations

import gradio as gr
import pytest


def test_a_batch_upload_with_other_columns_names_the_boxes_and_the_file(tmp_path):
    from apps.medical import code_batch

    upload = tmp_path / "gradio-tmp-1234" / "wrongcols.csv"
    upload.parent.mkdir()
    upload.write_text("note,body\n1,fever\n", encoding="utf-8")
    with pytest.raises(gr.Error) as error:
        code_batch(str(upload), "id", "text", "dictionary")
    message = error.value.message
    assert "Input 'wrongcols.csv' has no column 'id' (the Id column box)" in message, message
    assert "--id-col" not in message and "gradio-tmp-1234" not in message


def test_the_admin_page_points_to_its_train_section(tmp_path, monkeypatch):
    from apps import admin

    monkeypatch.setenv("DSUITE_REGISTRY", str(tmp_path / "registry"))
    with pytest.raises(gr.Error) as error:
        admin.adapter_details("nosuch")
    assert "Train one with the Train section of this page" in error.value.message
    assert "dsuite adapters train" not in error.value.message


def test_a_typed_note_beside_an_upload_is_said_to_be_left_out(tmp_path, capsys, caplog):
    """The upload wins, and the page says so (gr.Info; outside a request Gradio prints it)."""
    from apps.medical import code_one

    upload = tmp_path / "htn.txt"
    upload.write_text("History of hypertension.", encoding="utf-8")
    _, _, result, _ = code_one("Patient has asthma and gout.", str(upload), "dictionary")
    assert [c["code"] for c in result["codes"]] == ["I10"]
    shown = "".join(capsys.readouterr()) + caplog.text
    assert "Coded the uploaded file 'htn.txt', not the note typed in the box" in shown


def test_the_finished_loss_curve_is_every_recorded_step():
    """The live curve samples the progress bar's running loss; the finished one is what training recorded."""
    from apps.admin import evaluation_line, recorded_losses

    curve = recorded_losses({"training": {"losses": [2.9, 2.5, 2.47]}})
    assert curve["step"].tolist() == [1, 2, 3] and curve["loss"].tolist() == [2.9, 2.5, 2.47]
    metrics = {"heldout_nll": 2.06, "heldout_nll_base": 2.4, "heldout_nll_adapter": 2.03}
    line = evaluation_line({**metrics, "heldout_records": 2})
    assert line.startswith("evaluation: held-out loss per token on 2 held-out records (lower is better):")
    assert "heldout_records" not in line and "-> adapter 2.03" in line


def test_an_over_long_question_is_refused_by_the_handler_itself():
    """The Finance tab had no limit, and an API call to the support chat skips the box's validator."""
    from apps import customer_service, finance

    with pytest.raises(gr.Error, match="the advisor reads at most 4000"):
        finance.ask("x" * 4001, [], None)
    with pytest.raises(gr.Error, match="the assistant reads at most 4000"):
        next(customer_service.respond("x" * 4001, [], None))
    from apps.hub import message_problem

    assert "the hub reads at most 4000" in message_problem("x" * 4001)
    assert message_problem("x" * 4000) is None and "box is empty" in message_problem("  ")
