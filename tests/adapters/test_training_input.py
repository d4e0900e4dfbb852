"""What an engineer training an adapter on their own data meets: the registry folder, bad settings and data,
checks before the base loads, missing data cards, --resume after a finished run, help text, truncation."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch

from adapters.checkpoint import save_checkpoint
from adapters.config import LoraTrainConfig
from adapters.data import encode, fit_to_length, load_examples, write_jsonl
from adapters.registry import Registry, registry_root
from adapters.train import _file_sha256, train_adapter
from apps.cli import main
from core_model.errors import DSuiteError

from .conftest import random_lora


def run(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    out = capsys.readouterr()
    return stop.value.code or 0, out.out, out.err


def flat(text: str) -> str:
    """Help text without the boxes and line breaks of rich's layout."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text))


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """No registry variable set and a scratch $DSUITE_HOME (nothing lands in the user's cache)."""
    monkeypatch.delenv("DSUITE_REGISTRY", raising=False)
    monkeypatch.delenv("DSUITE_ADAPTERS", raising=False)
    monkeypatch.setenv("DSUITE_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture
def yes_no(tmp_path):
    return write_jsonl(
        tmp_path / "yn.jsonl",
        [{"prompt": f"q{i}", "completion": "yes" if i % 2 else "no"} for i in range(12)],
    )


# ---------------------------------------------------------------- 1. one registry folder for everyone
def test_one_registry_folder_for_cli_registry_and_hub(isolated_env, monkeypatch, capsys, tiny_base):
    from apps import services

    tmp = isolated_env
    assert Registry().root == tmp / "home" / "adapters"
    monkeypatch.setenv("DSUITE_REGISTRY", str(tmp / "hub-reg"))
    tensors, config = random_lora(tiny_base, seed=1)
    Registry(tmp / "hub-reg").register("served", tensors, config, base_fingerprint=tiny_base.fingerprint)
    assert Registry().root == registry_root() == tmp / "hub-reg"
    services.registry.cache_clear()
    try:
        assert services.registry().root == tmp / "hub-reg"
    finally:
        services.registry.cache_clear()
    # the CLI sees what the hub serves (README: set DSUITE_REGISTRY for the hub)
    code, out, err = run(capsys, "adapters", "list", "--json")
    assert code == 0, err
    assert [row["name"] for row in json.loads(out)] == ["served"]
    # the older name alone still works; both naming the same folder too
    monkeypatch.delenv("DSUITE_REGISTRY")
    monkeypatch.setenv("DSUITE_ADAPTERS", str(tmp / "old-reg"))
    assert Registry().root == tmp / "old-reg"
    monkeypatch.setenv("DSUITE_REGISTRY", f"{tmp}/other/../old-reg")
    assert Registry().root.resolve() == (tmp / "old-reg").resolve()
    # an explicit --registry wins over the variables
    assert Registry(tmp / "explicit").root == tmp / "explicit"


def test_two_registry_variables_naming_two_folders_is_an_error(isolated_env, monkeypatch, capsys):
    tmp = isolated_env
    monkeypatch.setenv("DSUITE_REGISTRY", str(tmp / "a"))
    monkeypatch.setenv("DSUITE_ADAPTERS", str(tmp / "b"))
    with pytest.raises(DSuiteError, match="DSUITE_REGISTRY=.*DSUITE_ADAPTERS=.*different"):
        Registry()
    code, _, err = run(capsys, "adapters", "list")
    assert code == 2 and "DSUITE_REGISTRY" in err and "DSUITE_ADAPTERS" in err


# ---------------------------------------------------------------- 2. nonsense settings
@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("max_steps", -1, "max_steps must be >= 0"),
        ("epochs", -1.0, "epochs must be a finite number >= 0"),
        ("epochs", float("inf"), "epochs must be a finite number >= 0"),
        ("lr", float("nan"), "lr must be a finite number > 0"),
        ("lr", float("inf"), "lr must be a finite number > 0"),
        ("weight_decay", -0.1, "weight_decay must be >= 0"),
        ("max_eval", 0, "max_eval must be >= 1"),
        ("checkpoint_every", -2, "checkpoint_every must be >= 0"),
        ("warmup_steps", -1, "warmup_steps must be >= 0"),
        ("seed", -3, "seed must be >= 0"),
        ("alpha", float("nan"), "alpha must be a finite number > 0"),
    ],
)
def test_nonsense_settings_are_refused(setting, value, message):
    with pytest.raises(DSuiteError, match=message):
        LoraTrainConfig(**{setting: value})


def test_negative_max_steps_registers_nothing(isolated_env, monkeypatch, capsys, yes_no, tiny_base):
    monkeypatch.setenv("DSUITE_REGISTRY", str(isolated_env / "reg"))
    code, _, err = run(
        capsys, "adapters", "train", "--name", "yn", "--data", str(yes_no), "--preset", "tiny",
        "--max-steps", "-1", "--base", str(tiny_base.path),
    )  # fmt: skip
    assert code == 2 and "Invalid value for '--max-steps'" in err, err  # the flag, not the setting's name
    assert Registry(isolated_env / "reg").names() == []


# ---------------------------------------------------------------- 3. bad data files
def test_non_utf8_file_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        b'{"prompt": "a", "completion": "b"}\n{"prompt": "caf\xe9", "completion": "b"}\n'
        b'{"prompt": "c", "completion": "d"}\n'
    )
    with pytest.raises(DSuiteError, match=r"latin1.jsonl:2: not UTF-8 text .*save it as UTF-8"):
        load_examples(path)
    path.write_bytes('{"prompt": "a", "completion": "b"}\n'.encode("utf-16"))
    with pytest.raises(DSuiteError, match="UTF-16.*save it as UTF-8"):
        load_examples(path)


def _run_advice(message: str, source: Path) -> Path:
    """Run the conversion a refusal shows (``python -c "..." 'FILE' > 'FILE.jsonl'``); returns the JSONL."""
    import subprocess
    import sys

    code = re.search(r'python -c "(.+?)" \'', message).group(1)
    target = source.with_suffix(".jsonl")
    assert f"'{source}' > '{target}'" in message
    with target.open("w", encoding="utf-8") as out:
        subprocess.run([sys.executable, "-c", code, str(source)], stdout=out, check=True)
    return target


def test_a_folder_a_table_or_a_json_array_is_refused_with_how_to_make_jsonl(tmp_path):
    records = [
        {"prompt": "What is 2+2?", "completion": "4"},
        {"prompt": "Capital of France?", "completion": "Paris"},
    ]
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", records)
    with pytest.raises(DSuiteError, match=r"is a folder; give the JSONL file \(it holds train.jsonl\)"):
        load_examples(folder)
    table = tmp_path / "pairs.csv"
    table.write_text("prompt,completion\nWhat is 2+2?,4\n\"Capital of France?\",Paris\n", encoding="utf-8")
    with pytest.raises(DSuiteError, match="is a CSV file; training reads JSON Lines") as csv_refusal:
        load_examples(table)
    assert [e.completion for e in load_examples(_run_advice(str(csv_refusal.value), table))] == ["4", "Paris"]
    array = tmp_path / "pairs.json"
    array.write_text(json.dumps(records, indent=2), encoding="utf-8")
    with pytest.raises(DSuiteError, match="is a JSON array .*not JSON Lines") as refusal:
        load_examples(array)
    assert [e.completion for e in load_examples(_run_advice(str(refusal.value), array))] == ["4", "Paris"]
    (tmp_path / "pairs.parquet").write_bytes(b"PAR1\x00\x00")
    with pytest.raises(DSuiteError, match="is a Parquet file"):
        load_examples(tmp_path / "pairs.parquet")


def test_records_that_repeat_an_earlier_one_are_trained_on_with_a_warning(tmp_path, caplog):
    pairs = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(3)]
    path = write_jsonl(tmp_path / "twice.jsonl", pairs + pairs[:2])
    with caplog.at_level(logging.WARNING, logger="adapters.data"):
        assert len(load_examples(path)) == 5
    said = "2 of 5 records repeat an earlier record word for word (line 4 repeats line 1, line 5 repeats line"
    assert said + " 2)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="adapters.data"):
        load_examples(write_jsonl(tmp_path / "once.jsonl", pairs))
    assert "repeat" not in caplog.text


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + b'{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n'
    )
    assert [e.completion for e in load_examples(path)] == ["b", "d"]


def test_all_bad_rows_are_listed_together(tmp_path):
    good = [{"prompt": f"p{i}", "completion": "c"} for i in range(3)]
    bad = [{"prompt": f"p{i}"} for i in range(12)] + [{"prompt": "", "completion": "c"}, "text"]
    path = write_jsonl(tmp_path / "mixed.jsonl", good + bad)
    with pytest.raises(DSuiteError) as caught:
        load_examples(path)
    message = str(caught.value)
    assert "14 of 17 record(s) are bad" in message
    assert "mixed.jsonl:4: missing 'completion'" in message and "NoneType" not in message
    assert "mixed.jsonl:13: missing 'completion'" in message
    assert "mixed.jsonl:14:" not in message and "... and 4 more bad record(s)" in message
    assert "--skip-bad-rows" in message
    # the rule and the message agree: both fields must be non-empty text
    path = write_jsonl(tmp_path / "empty.jsonl", [{"prompt": " ", "completion": "c"}] + good)
    with pytest.raises(
        DSuiteError, match=r"empty.jsonl:1: 'prompt' is empty \('prompt' and 'completion' must both"
    ):
        load_examples(path)
    path = write_jsonl(tmp_path / "types.jsonl", [{"prompt": 3, "completion": None}] + good)
    with pytest.raises(DSuiteError, match="'prompt' is int, not text and 'completion' is NoneType, not text"):
        load_examples(path)
    assert len(load_examples(tmp_path / "mixed.jsonl", skip_bad_rows=True)) == 3
    path = write_jsonl(
        tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}, {"input": "i", "x": 1}] + good
    )
    with pytest.raises(DSuiteError) as caught:
        load_examples(path)
    assert (
        "qa.jsonl:1: record has keys ['answer', 'question'], none of 'messages', 'prompt', 'completion'; "
        "rename 'question' to 'prompt' and 'answer' to 'completion'" in str(caught.value)
    )
    assert "qa.jsonl:2: record has keys ['input', 'x'], none of 'messages', 'prompt', 'completion'\n" in str(
        caught.value
    )


def test_skip_bad_rows_trains_on_the_good_ones(isolated_env, monkeypatch, capsys, caplog, tiny_base, yes_no):
    monkeypatch.setenv("DSUITE_REGISTRY", str(isolated_env / "reg"))
    data = isolated_env / "some-bad.jsonl"
    data.write_text(yes_no.read_text() + '{"prompt": "q"}\n{"oops\n')
    args = ["adapters", "train", "--name", "yn", "--data", str(data), "--preset", "tiny",
            "--base", str(tiny_base.path), "--json"]  # fmt: skip
    code, _, err = run(capsys, *args)
    assert code == 2 and "some-bad.jsonl:13: missing 'completion'" in err and "some-bad.jsonl:14" in err
    with caplog.at_level(logging.WARNING):
        code, out, err = run(capsys, *args, "--skip-bad-rows")
    assert code == 0, err
    assert "skipping bad records" in caplog.text and "some-bad.jsonl:14: not valid JSON" in caplog.text
    assert json.loads(out)["skipped_bad_records"] == 2
    ref = Registry(isolated_env / "reg").resolve("yn")
    assert ref.meta["training"]["train_records"] + ref.meta["training"]["heldout_records"] == 12
    assert ref.meta["training"]["steps"] == 4  # the tiny preset: exactly 4 optimizer steps


# ---------------------------------------------------------------- 4. checks before the base loads
@pytest.fixture
def unloadable_base(tiny_base, tmp_path):
    """A copy of the tiny base whose weights are garbage: any attempt to load it fails."""
    folder = tmp_path / "broken-base"
    shutil.copytree(tiny_base.path, folder)
    for weights in folder.glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    (folder / "fingerprint.json").unlink(missing_ok=True)
    return folder


def test_bad_data_and_layers_fail_before_the_base_loads(tmp_path, unloadable_base, yes_no, registry):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(DSuiteError, match="bad.jsonl:2: missing 'completion'"):
        train_adapter("x", bad, base=str(unloadable_base), registry=registry, progress=False)
    config = LoraTrainConfig.preset("tiny").with_(layers=(5,))
    with pytest.raises(DSuiteError, match="has 2 decoder layers, 0 to 1"):
        train_adapter(
            "x", yes_no, base=str(unloadable_base), config=config, registry=registry, progress=False
        )
    with pytest.raises(DSuiteError, match="does not exist"):
        train_adapter("x", yes_no, base=str(tmp_path / "nowhere"), registry=registry, progress=False)


# ---------------------------------------------------------------- 5. missing data card
def test_missing_data_card_is_a_clear_error(isolated_env, monkeypatch, capsys, tiny_base, yes_no):
    monkeypatch.setenv("DSUITE_REGISTRY", str(isolated_env / "reg"))
    missing = str(isolated_env / "CARD.md")
    code, _, err = run(
        capsys, "adapters", "train", "--name", "yn", "--data", str(yes_no), "--preset", "tiny",
        "--base", str(tiny_base.path), "--data-card", missing,
    )  # fmt: skip
    assert code == 2 and "Data card" in err and "CARD.md" in err and "not found" in err
    folder = isolated_env / "peft"
    folder.mkdir()
    code, _, err = run(
        capsys, "adapters", "register", "--name", "yn", "--from", str(folder), "--base", str(tiny_base.path),
        "--data-card", missing,
    )  # fmt: skip
    assert code == 2 and "Data card" in err and "not found" in err
    assert Registry(isolated_env / "reg").names() == []


def test_a_mistyped_or_non_linear_target_module_is_refused(yes_no, tiny_base, registry):
    for targets in ("q_proj,nosuch", "embed_tokens"):  # peft ignores a wrong name beside a right one
        config = LoraTrainConfig.preset("tiny").with_(target_modules=targets)
        with pytest.raises(DSuiteError, match="The base has no Linear module named '(nosuch|embed_tokens)'"):
            train_adapter("tm", yes_no, base=tiny_base, config=config, registry=registry, progress=False)
    assert registry.names() == []


@pytest.mark.slow
def test_a_run_that_diverges_registers_nothing(yes_no, embedded_base, registry):
    """lr 1e6 on the real base: the loss is NaN by the fourth step (the tiny random base only saturates)."""
    config = LoraTrainConfig.preset("tiny").with_(lr=1e6)
    with pytest.raises(DSuiteError, match="Training big diverged: .*Nothing was registered; .*lower --lr"):
        train_adapter("big", yes_no, base=embedded_base, config=config, registry=registry, progress=False)
    assert registry.names() == [] and not (registry.root / ".checkpoints" / "big").exists()


# ---------------------------------------------------------------- 6. --resume after a finished run
def test_resume_after_a_finished_run_registers_no_duplicate(yes_no, tiny_base, registry, caplog):
    config = LoraTrainConfig.preset("tiny")
    first = train_adapter("yn", yes_no, base=tiny_base, config=config, registry=registry, progress=False)
    registry.alias("yn", "latest", first.version)
    with caplog.at_level(logging.WARNING, logger="adapters.train"):
        again = train_adapter(
            "yn", yes_no, base=tiny_base, config=config, registry=registry, resume=True, progress=False
        )
    assert again.key == first.key == "yn@1"
    assert registry.versions("yn") == [1] and registry.aliases("yn")["latest"] == 1
    assert "yn@1 was already trained from this data" in caplog.text
    # other settings: a new version, as asked
    other = train_adapter(
        "yn", yes_no, base=tiny_base, config=config.with_(seed=1), registry=registry, resume=True,
        progress=False,
    )  # fmt: skip
    assert other.version == 2


def test_resume_from_another_run_names_what_differs(yes_no, tiny_base, registry, tmp_path):
    config = LoraTrainConfig.preset("tiny")
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([param])
    run_id = {"data_sha256": _file_sha256(yes_no), "config": config.to_dict(), "base": tiny_base.fingerprint}
    save_checkpoint(
        registry.root / ".checkpoints" / "yn", {"w": torch.zeros(1)}, optimizer, [("w", param)],
        {"run": run_id, "step": 2, "tokens": 10, "losses": [1.0, 0.9]},
    )  # fmt: skip
    changed = config.with_(max_steps=6, lr=2e-3)
    with pytest.raises(DSuiteError) as caught:
        train_adapter(
            "yn", yes_no, base=tiny_base, config=changed, registry=registry, resume=True, progress=False
        )
    message = str(caught.value)
    assert (
        "other settings (lr: 0.001 in the checkpoint, 0.002 now, max_steps: 4 in the checkpoint, 6 now)"
        in message
    )
    assert "other data" not in message and "another base" not in message
    other = write_jsonl(tmp_path / "other.jsonl", [{"prompt": "p", "completion": "q"}] * 4)
    with pytest.raises(DSuiteError, match=r"belongs to a run with other data \(sha256 .*\)\. Pass the same"):
        train_adapter(
            "yn", other, base=tiny_base, config=config, registry=registry, resume=True, progress=False
        )


# ---------------------------------------------------------------- 7. help text
def test_train_help_tells_the_preset_defaults(capsys):
    code, out, _ = run(capsys, "adapters", "train", "--help")
    assert code == 0
    text = flat(out)
    assert "default 16" not in text and "default 32" not in text and "default 0.1" not in text
    assert "LoRA rank (default: from --preset: default=16, tiny=4, quick=16)" in text
    assert "exactly 4 optimizer steps unless --max-steps" in text
    assert "--max-length" in text and "--skip-bad-rows" in text
    assert "DSUITE_REGISTRY" in text


# ---------------------------------------------------------------- 8. truncation
def test_fit_to_length_rule():
    prompt, completion = list(range(100, 110)), list(range(200, 205))
    assert fit_to_length(prompt, completion, 16, eos_id=0) == (prompt, [*completion, 0], False, False)
    # a long completion keeps its start, the prompt keeps half the budget (whole here), no end token
    long_completion = list(range(200, 240))
    p, c, prompt_cut, completion_cut = fit_to_length(prompt, long_completion, 16, eos_id=0)
    assert p == prompt[:4] + prompt[-4:]
    assert c == long_completion[:8] and 0 not in c and (prompt_cut, completion_cut) == (True, True)
    p, c, prompt_cut, completion_cut = fit_to_length(prompt[:5], long_completion, 16, eos_id=0)
    assert p == prompt[:5] and c == long_completion[:11] and (prompt_cut, completion_cut) == (False, True)
    # a long prompt loses its middle: its start and its end stay
    long_prompt = list(range(100, 160))
    p, c, prompt_cut, completion_cut = fit_to_length(long_prompt, completion, 16, eos_id=0)
    assert c == [*completion, 0] and len(p) + len(c) == 16
    assert p == long_prompt[:5] + long_prompt[-5:] and (prompt_cut, completion_cut) == (True, False)


def test_long_prompt_keeps_its_instruction_and_assistant_header(tiny_base, tmp_path):
    filler = " ".join(f"word{i}" for i in range(300))
    path = write_jsonl(
        tmp_path / "long.jsonl",
        [{"prompt": f"INSTRUCTION classify this. {filler} QUESTION which?", "completion": "positive"}] * 2,
    )
    example = load_examples(path)[0]
    prompt, completion = encode(tiny_base.tokenizer, example, max_length=96)
    assert len(prompt) + len(completion) == 96 and completion[-1] == tiny_base.tokenizer.eos_token_id
    text = tiny_base.tokenizer.decode(prompt)
    assert "INSTRUCTION" in text and "QUESTION which?" in text and text.rstrip().endswith("assistant")


def test_truncation_is_counted_and_max_length_is_an_option(
    isolated_env, monkeypatch, capsys, caplog, tiny_base
):
    monkeypatch.setenv("DSUITE_REGISTRY", str(isolated_env / "reg"))
    long = " ".join(f"w{i}" for i in range(80))
    records = [{"prompt": f"q{i}", "completion": "yes" if i % 2 else "no"} for i in range(9)]
    records += [{"prompt": f"q {long}", "completion": "yes"}, {"prompt": "q", "completion": long}, records[0]]
    data = write_jsonl(isolated_env / "long.jsonl", records)
    with caplog.at_level(logging.WARNING):
        code, out, err = run(
            capsys, "adapters", "train", "--name", "yn", "--data", str(data), "--preset", "tiny",
            "--max-length", "80", "--base", str(tiny_base.path), "--json",
        )  # fmt: skip
    assert code == 0, err
    assert "2 of 12 record(s) are longer than max_length=80 tokens" in caplog.text
    assert (
        "1 prompt(s) cut in the middle, 1 completion(s) cut" in caplog.text and "lines 10, 11" in caplog.text
    )
    assert json.loads(out)["truncated_records"] == 2
    ref = Registry(isolated_env / "reg").resolve("yn")
    assert ref.meta["training"]["settings"]["max_length"] == 80
