"""The `dsuite cs` commands run for real, and every cs.* task is registered with working scorers."""

import json
import subprocess

from domains.customer_service.dst_adapter import (
    build_training_set,
    gold_delta,
    parse_delta,
    turn_messages,
    validation_dialogues,
)
from eval.data import multiwoz
from eval.registry import SystemSpec, get_task, task_names
from tests.conftest import dsuite_command, invoke_dsuite, last_json, run_dsuite


def test_cs_help_lists_commands():
    out = run_dsuite("cs", "--help", timeout=120)
    assert out.returncode == 0
    for command in (
        "chat",
        "ask",
        "train-intents",
        "build-faq",
        "dst-data",
        "train-dst",
        "verifier-thresholds",
        "dst-ceiling",
        "track",
    ):
        assert command in out.stdout


def test_cs_ask_prints_a_turn_as_json():
    out = invoke_dsuite("cs", "ask", "I need to talk with a human agent")
    assert out.returncode == 0, out.stderr
    turn = last_json(out.stdout)
    assert turn["escalation"]["reason"] == "requested"


def test_cs_ask_writes_a_reply_and_refuses_a_bad_precision():
    out = invoke_dsuite("cs", "ask", "Can you recommend a good umbrella?", "--generate")
    assert out.returncode == 0, out.stderr
    turn = last_json(out.stdout)
    assert turn["source"] == "generated" and turn["reply"].strip()
    out = invoke_dsuite("cs", "ask", "hello", "--generate", "--precision", "fp16")
    assert out.returncode == 2 and "fp32, int8, int4" in out.stderr


def _chat(*flags: str, messages: list[str]) -> subprocess.CompletedProcess:
    """``dsuite cs chat FLAGS`` fed one message per line; it must exit cleanly."""
    out = invoke_dsuite("cs", "chat", *flags, stdin="".join(f"{m}\n" for m in messages))
    assert out.returncode == 0, out.stderr
    return out


def test_cs_chat_asks_for_more_where_no_faq_fits_unless_told_to_generate():
    out = _chat("--json", messages=["Can you recommend a good umbrella?"])
    turn = last_json(out.stdout)
    assert turn["source"] == "clarify" and "tell me a bit more" in turn["reply"]


def test_cs_chat_streams_replies_in_the_terminal_and_stops_at_a_handover():
    messages = ["Can you recommend a good umbrella?", "Let me talk to a real person please.", "Still there?"]
    out = _chat("--generate", messages=messages)
    replies = [line for line in out.stdout.splitlines() if line.startswith("assistant> ")]
    details = [line for line in out.stdout.splitlines() if line.startswith("   [intent ")]
    assert len(replies) == 2 and len(replies[0]) > len("assistant> ") + 10  # the written reply
    assert "source generated" in details[0] and "ESCALATED (requested" in details[1]


def test_cs_chat_asks_again_for_a_line_that_is_not_utf8():
    """A Latin-1 line on stdin: said and skipped, and the next message is answered."""
    out = invoke_dsuite("cs", "chat", "--json", stdin=b"caf\xe9 refund\nI want to cancel order 4471923\n")
    assert out.returncode == 0, out.stderr
    assert "That message is not UTF-8 text" in out.stderr
    assert last_json(out.stdout)["intent"] == "cancel_order"


def test_cs_track_refuses_a_bad_file(tmp_path):
    bad = tmp_path / "dialogue.json"
    bad.write_text('{"user": "hi"}')
    out = invoke_dsuite("cs", "track", str(bad), "--rules")
    assert out.returncode == 2 and "JSON list" in out.stderr


def test_cs_track_names_the_file_and_turn_of_a_bad_turn_and_a_non_utf8_file(tmp_path):
    bad_turn = tmp_path / "bad_turn.json"
    bad_turn.write_text(json.dumps([{"system": "", "user": "I need a cheap hotel."}, {"user": 5}]))
    out = invoke_dsuite("cs", "track", str(bad_turn), "--rules")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"'{bad_turn}', turn 2" in out.stderr and '"user" must be a string, got 5' in out.stderr
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('[{"user": "a café in the centre"}]'.encode("latin-1"))
    out = invoke_dsuite("cs", "track", str(latin1), "--rules")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"'{latin1}' is not UTF-8 text" in out.stderr and "save it as UTF-8" in out.stderr


def test_cs_ask_refuses_an_empty_message_in_cli_terms():
    out = invoke_dsuite("cs", "ask", "")
    assert out.returncode == 2 and "cs ask needs a customer message" in out.stderr, out.stderr
    assert "respond()" not in out.stderr


def test_cs_track_prints_a_state_per_turn_with_the_verifier_the_writer_and_the_rules(tmp_path):
    dialogue = tmp_path / "dialogue.json"
    turns = [
        {"system": "", "user": "I need a cheap restaurant in the north."},
        {
            "system": "How about Royal Spice? It serves Indian food.",
            "user": "Sounds great, book it for 4 people.",
        },
    ]
    dialogue.write_text(json.dumps(turns))
    states = {}
    for mode in ("", "--generate", "--rules"):
        out = invoke_dsuite("cs", "track", str(dialogue), *([mode] if mode else []))
        assert out.returncode == 0, out.stderr
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        assert [line["user"] for line in lines] == [t["user"] for t in turns]
        states[mode.strip("-") or "verifier"] = [line["state"] for line in lines]
    first = states["verifier"][0]
    assert first.get("restaurant-pricerange") == "cheap" and first.get("restaurant-area") == "north"
    assert set(states["verifier"][1]) <= set(states["rules"][1]) | {"restaurant-name", "restaurant-food"}


def test_all_cs_tasks_are_registered():
    import domains.customer_service  # noqa: F401

    names = {"cs.banking77", "cs.clinc150", "cs.bitext_escalation", "cs.bitext_faq", "cs.multiwoz", "cs.sgd"}
    assert names | {"cs.support_answers"} <= set(task_names())
    task = get_task("cs.multiwoz")
    dialogues = multiwoz.load_dialogues("test", limit=2)
    n_turns = sum(len(multiwoz.user_turns(d)) for d in dialogues)
    examples = task.load("test")[:n_turns]  # one example per user turn: the first two dialogues
    assert {e["dialogue_id"] for e in examples} == {d["dialogue_id"] for d in dialogues}
    outputs = task.predict(examples, SystemSpec(baseline="rules"))
    scores = task.score(examples, outputs)
    assert 0 <= scores["joint_goal_accuracy"] <= 1 and scores["turns"] == n_turns
    escalation = get_task("cs.bitext_escalation")
    fake = [{"label": "contact_human_agent"}, {"label": "review"}, {"label": "review"}]
    scored = escalation.score(fake, [{"escalated": True}, {"escalated": True}, {"escalated": False}])
    assert scored["escalation_recall"] == 1.0 and scored["false_escalation_rate"] == 0.5
    answers = get_task("cs.support_answers")
    outputs = [{"source": "faq", "faq_intent": "review"}, {"source": "faq", "faq_intent": "track_order"}]
    outputs += [{"source": "clarify", "faq_intent": None}, {"source": "handover", "faq_intent": None}]
    scored = answers.score([{"label": "review"}] * 4, outputs)
    assert scored == {"right_answer": 0.25, "wrong_answer": 0.25, "asked_back": 0.25, "handed_over": 0.25}


def test_adapter_prompt_and_answer_parsing():
    messages = turn_messages("What area ?", "the centre please", "hotel", {"hotel-area": "centre"})
    assert "hotel (pricerange" in messages[1]["content"] and "centre please" in messages[1]["content"]
    assert parse_delta('sure: {"hotel-area": "centre", "hotel-stars": 4} trailing') == {
        "hotel-area": "centre",
        "hotel-stars": "4",
    }
    assert parse_delta("no json here") == {} and parse_delta("{broken") == {}
    assert gold_delta({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"}) == {"b": "3", "c": "4"}


def test_a_prompt_template_may_show_the_state_so_far(monkeypatch):
    import domains.customer_service.dst_adapter as dst

    template = {**dst.prompt_template(), "user": "State: {state}\nUser: {user}"}
    monkeypatch.setattr(dst, "prompt_template", lambda: template)
    later = turn_messages("Booked.", "a taxi too", "taxi", {}, state={"hotel-name": "acorn guest house"})
    assert later[1]["content"] == 'State: {"hotel-name": "acorn guest house"}\nUser: a taxi too'
    assert turn_messages("", "hi", None, {})[1]["content"] == "State: {}\nUser: hi"


def test_dst_validation_dialogues_are_kept_out_of_training(tmp_path):
    dev = multiwoz.load_dialogues("dev")
    held = validation_dialogues(d["dialogue_id"] for d in dev)
    assert len(held) == (len(dev) + 7) // 8  # every 8th dialogue by id
    path = build_training_set(tmp_path / "dst.jsonl", limit=None)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    trained = {r["dialogue_id"] for r in records}
    assert not trained & held and len(trained) == len(dev) - len(held)
    task = get_task("cs.multiwoz")
    assert {e["dialogue_id"] for e in task.load("validation")} == held


def test_dst_data_writes_both_tasks_of_the_training_dialogues(tmp_path):
    out = tmp_path / "set.jsonl"
    done = invoke_dsuite("cs", "dst-data", str(out), "--limit", "300")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    answers = [r["messages"][-1]["content"] for r in records]
    decisions = [a for a in answers if a in ("yes", "no")]
    assert len(records) == 600 and len(decisions) == 300  # 300 of each part
    assert all(json.loads(a) is not None for a in answers if a not in ("yes", "no"))  # JSON state updates
    held = validation_dialogues(d["dialogue_id"] for d in multiwoz.load_dialogues("dev"))
    assert not {r["dialogue_id"] for r in records} & held
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.jsonl"]  # no part file left behind


def test_ctrl_c_in_cs_chat_stops_the_reply_being_written_and_the_chat_goes_on():
    import os
    import signal
    import time

    process = subprocess.Popen(
        dsuite_command("cs", "chat", "--generate"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        process.stdin.write("Can you recommend a good umbrella for a windy city?\n")
        process.stdin.flush()
        seen = ""
        deadline = time.monotonic() + 240
        while len(seen.partition("assistant> ")[2]) < 8 and time.monotonic() < deadline:
            seen += os.read(process.stdout.fileno(), 64).decode()
        process.send_signal(signal.SIGINT)  # while the reply is being written
        out, err = process.communicate("Let me talk to a real person please.\n", timeout=240)
    finally:
        process.kill()
    lines = (seen + out).splitlines()
    assert process.returncode == 0, err
    replies = [line for line in lines if line.startswith("assistant> ")]
    assert replies[0].endswith(" [reply stopped]") and "ESCALATED (requested" in (seen + out)


def test_the_domain_training_set_holds_both_tasks_of_the_shipped_adapter(tmp_path):
    from domains.registry import get_domain

    path = get_domain("customer_service").build_training_set(tmp_path / "cs.jsonl", limit=40)
    answers = [json.loads(line)["messages"][-1]["content"] for line in path.read_text().splitlines()]
    decisions = [a for a in answers if a in ("yes", "no")]
    assert len(answers) == 80 and len(decisions) == 40  # state updates and candidate decisions, 40 each
