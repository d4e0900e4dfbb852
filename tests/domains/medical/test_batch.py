"""The batch coding job: malformed rows go to quarantine, SIGKILL + rerun equals an uninterrupted run, Ctrl-C
says what is committed and how to resume, and the Ray engine's output equals the local engine's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from domains.medical.batch import JobConfig, run_batch
from tests.conftest import REPO, dsuite_command

GOOD_TEXTS = [
    "Patient presents with fever and cough. Denies chest pain. History of hypertension.",
    "Assessment: community acquired pneumonia. Mother had breast cancer.",
    "No evidence of deep vein thrombosis. Type 2 diabetes mellitus, on metformin.",
    "Chronic kidney disease and anemia. Return if vomiting.",
]


def _good_rows(n: int, start: int = 0) -> list[dict]:
    return [
        {"id": f"note-{i:05d}", "text": f"{GOOD_TEXTS[i % 4]} Visit {i}."} for i in range(start, start + n)
    ]


def _write_jsonl_with_bad_rows(path: Path) -> tuple[set[str], int]:
    """300 good rows with 100 malformed ones spread among them (all six kinds)."""
    good = _good_rows(300)
    lines: list[bytes] = []
    bad = 0
    kinds = [
        lambda i: json.dumps({"text": "no id here, fever"}).encode(),  # missing id
        lambda i: json.dumps({"id": "", "text": "empty id"}).encode(),  # missing id
        lambda i: json.dumps({"id": f"x{i}"}).encode(),  # missing text
        lambda i: json.dumps({"id": f"y{i}", "text": 12345}).encode(),  # non-text
        lambda i: json.dumps({"id": f"z{i}", "text": "a" * 5000}).encode(),  # oversize (limit 4000)
        lambda i: json.dumps(
            {"id": good[i]["id"], "text": "duplicate of an earlier id"}
        ).encode(),  # duplicate
        lambda i: b'{"id": "u%d", "text": "caf\xe9 latte"}' % i,  # undecodable (latin-1 byte)
        lambda i: b'{"id": "broken", "text": ',  # not JSON
        lambda i: b'["a", "list"]',  # not an object
        lambda i: json.dumps({"id": f"w{i}", "text": "   "}).encode(),  # empty text
    ]
    for i, row in enumerate(good):
        lines.append(json.dumps(row).encode())
        if i % 3 == 2 and bad < 100:
            lines.append(kinds[bad % len(kinds)](i))
            bad += 1
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {r["id"] for r in good}, bad


def test_malformed_rows_are_quarantined_and_good_rows_coded_once(tmp_path):
    source = tmp_path / "notes.jsonl"
    good_ids, bad = _write_jsonl_with_bad_rows(source)
    assert bad == 100
    out = tmp_path / "coded.jsonl"
    summary = run_batch(
        JobConfig(input=source, output=out, mode="dictionary", chunk_size=50, max_chars=4000, progress=False)
    )
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(good_ids) and len(ids) == len(set(ids))
    quarantine = [json.loads(line) for line in Path(summary["quarantine"]).read_text().splitlines()]
    assert len(quarantine) == 100 and summary["quarantined"] == 100 and summary["coded"] == 300
    # the coder's loading is reported apart from the coding time the rate is computed on
    assert summary["setup_seconds"] >= 0
    seconds = summary["seconds"]  # rounded to 0.01 s: the rate lies within what that rounding allows
    assert 300 / (seconds + 0.006) <= summary["notes_per_s"] <= 300 / max(seconds - 0.006, 1e-3)
    assert all(q["reason"] for q in quarantine)
    kinds = {q["reason"].split(":")[0] for q in quarantine}
    assert kinds == {
        "missing id",
        "missing text",
        "non-text",
        "oversize",
        "duplicate id",
        "undecodable",
        "malformed",
    }
    assert not out.with_name(out.name + ".parts").exists()
    # a note's result carries its exclusions: "Denies chest pain" is never coded
    first = json.loads(out.read_text().splitlines()[0])
    assert "R07.9" not in {c["code"] for c in first["codes"]}
    assert any(e["text"].lower() == "chest pain" and e["assertion"] == "negated" for e in first["excluded"])


def _run_cli(source: Path, out: Path, extra: list[str] | None = None) -> subprocess.Popen:
    cmd = dsuite_command(
        "medical",
        "code-batch",
        str(source),
        "--out",
        str(out),
        "--mode",
        "dictionary",
        "--chunk-size",
        "20",
        "--quiet",
        *(extra or []),
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Ctrl-C raises KeyboardInterrupt in the job even when these tests run where SIGINT is ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _write_notes_csv(path: Path, n: int) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text"])
        writer.writeheader()
        writer.writerows(_good_rows(n))


def _stop_after_commits(process: subprocess.Popen, parts: Path, commits: int, how: signal.Signals) -> str:
    """Send ``how`` to the job once ``commits`` chunks are committed; returns its stderr once it ended."""
    deadline = time.time() + 240
    while time.time() < deadline and len(list(parts.glob("*.results.jsonl"))) < commits:
        if process.poll() is not None:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the job finished before it could be stopped; give it more rows"
    os.kill(process.pid, how)
    return process.communicate(timeout=120)[1].decode()


def test_sigkill_then_rerun_equals_uninterrupted_run(tmp_path):
    source = tmp_path / "notes.csv"
    _write_notes_csv(source, 2000)
    reference = tmp_path / "reference.jsonl"
    run_batch(JobConfig(input=source, output=reference, mode="dictionary", chunk_size=20, progress=False))

    out = tmp_path / "killed.jsonl"
    parts = out.with_name(out.name + ".parts")
    process = _run_cli(source, out)
    _stop_after_commits(process, parts, 3, signal.SIGKILL)
    committed = len(list(parts.glob("*.results.jsonl")))
    assert 3 <= committed < 100 and not out.exists()

    rerun = _run_cli(source, out)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    assert summary["skipped_already_committed"] == committed * 20
    assert summary["coded_this_run"] == 2000 - committed * 20
    assert out.read_bytes() == reference.read_bytes()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_workers_end_when_the_job_is_killed(tmp_path):
    """SIGKILL gives the pool no chance to shut its workers down: they notice and exit on their own."""
    source = tmp_path / "notes.csv"
    _write_notes_csv(source, 2000)
    out = tmp_path / "killed.jsonl"
    process = _run_cli(source, out, ["--workers", "2"])
    parts = out.with_name(out.name + ".parts")
    deadline = time.time() + 240
    while time.time() < deadline and not list(parts.glob("*.results.jsonl")) and process.poll() is None:
        time.sleep(0.05)
    workers = [p for p in _children(process.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
    assert len(workers) >= 2, workers
    _stop_after_commits(process, parts, 1, signal.SIGKILL)
    deadline = time.time() + 30
    while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.2)
    alive = [p for p in workers if Path(f"/proc/{p}").exists()]
    assert not alive, f"workers {alive} outlived the killed job"


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_says_what_is_committed_and_a_rerun_resumes(tmp_path, workers):
    """With worker processes too: they stop mid-chunk, and the rerun codes what they were coding."""
    source = tmp_path / "notes.csv"
    _write_notes_csv(source, 2000)
    out = tmp_path / "coded.jsonl"
    parts = out.with_name(out.name + ".parts")
    process = _run_cli(source, out, ["--workers", str(workers)])
    stderr = _stop_after_commits(process, parts, 3, signal.SIGINT)
    committed = len(list(parts.glob("*.results.jsonl")))
    assert process.returncode == 130, stderr[-2000:]
    assert f"Interrupted: {committed * 20} rows committed to '{parts}'" in stderr
    assert "rerun the same command to resume" in stderr and "Traceback" not in stderr
    assert 3 <= committed < 100 and not out.exists()
    rerun = _run_cli(source, out, ["--workers", str(workers)])
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    assert summary["skipped_already_committed"] == committed * 20 and summary["coded"] == 2000
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [row["id"] for row in _good_rows(2000)]  # each note once, in input order


def test_ray_engine_output_equals_local(tmp_path):
    pytest.importorskip("ray")
    source = tmp_path / "notes.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(_good_rows(60) + [{"id": None, "text": "no id"}]), source)
    local = tmp_path / "local.jsonl"
    remote = tmp_path / "ray.jsonl"
    run_batch(JobConfig(input=source, output=local, mode="dictionary", chunk_size=16, progress=False))
    summary = run_batch(
        JobConfig(
            input=source,
            output=remote,
            mode="dictionary",
            chunk_size=16,
            engine="ray",
            workers=1,
            progress=False,
        )
    )
    assert summary["coded"] == 60 and summary["quarantined"] == 1
    assert remote.read_bytes() == local.read_bytes()
    assert (
        Path(str(remote) + ".quarantine.jsonl").read_bytes()
        == Path(str(local) + ".quarantine.jsonl").read_bytes()
    )


def test_bad_settings_are_refused(tmp_path):
    from core_model.errors import DSuiteError

    source = tmp_path / "notes.txt"
    source.write_text("x")
    with pytest.raises(DSuiteError, match="suffix"):
        run_batch(JobConfig(input=source, output=tmp_path / "o.jsonl", progress=False))
    good = tmp_path / "notes.jsonl"
    good.write_text(json.dumps({"id": "1", "text": "fever"}) + "\n")
    with pytest.raises(DSuiteError, match="engine"):
        run_batch(JobConfig(input=good, output=tmp_path / "o.jsonl", engine="spark", progress=False))
    assert sys.executable


def test_code_notes_equals_coding_note_by_note():
    from domains.medical.batch import code_notes
    from domains.medical.coder import get_coder

    notes = [(f"n{i}", text) for i, text in enumerate(GOOD_TEXTS)] + [("empty", "  ")]
    batched = code_notes(notes, "rules+retrieval")
    coder = get_coder("rules+retrieval")
    assert [o["ok"] for o in batched[:-1]] == [coder.code(text, note_id) for note_id, text in notes[:-1]]
    assert "empty" in batched[-1]["error"]["reason"]
