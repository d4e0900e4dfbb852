"""Each industry app through gradio_client on the served hub: every handler, including an error path."""

from __future__ import annotations

import csv
import json

import pytest

from tests.apps.conftest import DATA

NOTE = ("HISTORY: History of type 2 diabetes mellitus. Mother had breast cancer.\n"
        "ASSESSMENT: Patient denies chest pain. Possible pneumonia.")


def test_medical_codes_one_note_with_evidence_and_assertions(client):
    marked, codes, result, json_file = client.predict(NOTE, None, "rules+retrieval", api_name="/medical_code")
    by_text = {item["token"]: item["class_or_confidence"] for item in marked}  # (text, label) pieces
    assert by_text.get("chest pain") == "negated"
    assert by_text.get("breast cancer") == "family"
    coded = [row[0] for row in codes["data"]]
    assert any(code.startswith("E11") for code in coded)
    assert not any(code.startswith("C50") for code in coded)  # a family mention is not coded
    assert {e["reason"] for e in result["excluded"]}
    assert json_file.endswith("coding.json")


def test_medical_rejects_an_empty_note(client):
    with pytest.raises(Exception, match="note is empty"):
        client.predict("   ", None, "rules+retrieval", api_name="/medical_code")


def test_medical_batch_codes_a_file_and_quarantines_bad_rows(client, tmp_path):
    path = tmp_path / "notes.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerow(["a", "Patient has hypertension and no fever."])
        writer.writerow(["b", "History of asthma. Denies cough."])
        writer.writerow(["c", ""])
    from gradio_client import handle_file

    summary, results, table, quarantine = client.predict(
        handle_file(str(path)), "id", "text", "rules+retrieval", api_name="/medical_batch"
    )
    assert summary["coded"] == 2 and summary["quarantined"] == 1
    with open(results) as handle:
        coded = [json.loads(line) for line in handle]
    assert len(coded) == 2
    with open(table, encoding="utf-8-sig", newline="") as handle:  # the same codes, one row each
        rows = [(row["id"], row["code"]) for row in csv.DictReader(handle)]
    assert sorted(rows) == sorted((r["id"], c["code"]) for r in coded for c in r["codes"]) and rows
    with open(quarantine) as handle:
        assert '"c"' in handle.read()


def test_medical_batch_rejects_a_wrong_file_type(client):
    from gradio_client import handle_file

    with pytest.raises(Exception, match=r"(one of these formats|must be one of).*\.csv"):
        client.predict(handle_file(str(DATA / "not_jsonl.txt")), "id", "text", "rules+retrieval",
                       api_name="/medical_batch")


def test_finance_advisor_tracks_state_and_cites_terms(client):
    history, box, state, terms, details = client.predict(
        "I have $5,000 to invest for 10 years. What is an index fund?", [], False, False,
        api_name="/finance_ask")
    assert state["horizon_years"] == 10 and state["amount"] == 5000
    assert any("index fund" in row[0].lower() for row in terms["data"])
    from domains.finance.policy import disclaimer

    content = history[-1]["content"]
    text = content if isinstance(content, str) else " ".join(part.get("text", "") for part in content)
    assert disclaimer() in text
    assert details["answered_by"] == "extractive"


def test_finance_rejects_an_empty_question(client):
    with pytest.raises(Exception, match="empty"):
        client.predict("  ", [], False, False, api_name="/finance_ask")


def test_finance_chart_replays_and_simulates(client):
    plot, facts = client.predict("KO", "replay", api_name="/finance_chart")
    assert "KO" in facts and "replay" in facts
    plot, facts = client.predict("ACME", "simulated", api_name="/finance_chart")
    assert "ACME" in facts and "simulated" in facts
    with pytest.raises(Exception, match="No shared price history"):
        client.predict("NOSUCH", "replay", api_name="/finance_chart")


def test_customer_service_tracks_state_and_escalates_on_request(client):
    chat, box, intent, state, faq, banner = client.predict(
        "I want to cancel order 1234567, it has not shipped yet.", [], False, api_name="/cs_respond")
    assert "**Intent**" in intent and "confidence" in intent
    assert any("1234567" in str(row[1]) for row in state["data"])
    assert chat[-1]["role"] == "assistant" and chat[-1]["content"]
    chat, box, intent, state, faq, banner = client.predict(
        "Let me talk to a real person please.", chat, False, api_name="/cs_respond")
    assert "Handed over to a human agent" in str(banner) and "requested" in str(banner)


def test_customer_service_streams_a_reply_when_no_faq_fits(client):
    client.predict(api_name="/cs_reset")  # a new conversation: the one above was handed over
    job = client.submit("Can you recommend a good umbrella?", [], True, api_name="/cs_respond")
    chat, box, intent, state, faq, banner = job.result(timeout=300)
    assert len(job.outputs()) > 2  # the reply arrived token by token
    assert "**answer from** generated" in intent
    content = chat[-1]["content"]  # the client gives message parts: [{"type": "text", "text": ...}]
    text = "".join(p.get("text", "") for p in content) if isinstance(content, list) else content
    assert chat[-1]["role"] == "assistant" and text.strip()


def test_customer_service_rejects_an_empty_message(client):
    with pytest.raises(Exception, match="empty"):
        client.predict("", [], False, api_name="/cs_respond")
