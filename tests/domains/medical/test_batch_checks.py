"""The batch coding job's checks: a resume only with the same job (manifest), a finished job neither redone
nor replaced, the final row count, BOMs and UTF-16/Latin-1 input, missing columns, inputs without rows, bad
modes, unreadable Parquet, bad output paths, JSON arrays in JSONL, quarantine rows, the exit codes of
`dsuite medical code-batch`, and the local worker pool."""

from __future__ import annotations

import codecs
import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from core_model.errors import DSuiteError
from domains.medical import batch
from domains.medical.batch import Chunk, JobConfig, run_batch
from domains.medical.batch_io import CSV_COLUMNS
from tests.conftest import invoke_dsuite, last_json
from tests.domains.medical.test_batch import _good_rows, _write_jsonl_with_bad_rows


def _write_csv(path: Path, rows: list[dict], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _notes_csv(path: Path, n: int = 30) -> Path:
    """``n`` notes with two spare columns (``note_key`` and ``body``) for the id/text settings."""
    rows = [{**r, "note_key": f"k{i}", "body": r["text"]} for i, r in enumerate(_good_rows(n))]
    return _write_csv(path, rows)


def _job(source: Path, out: Path, **settings) -> JobConfig:
    return JobConfig(input=source, output=out, **{"mode": "dictionary", "progress": False, **settings})


def _parts(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _interrupted(source: Path, out: Path, **settings) -> list[Path]:
    """Run a job that commits every chunk and then fails at the final merge (a folder blocks its temporary
    output file): the state a crash just before the merge leaves. Returns the committed parts."""
    blocker = out.with_name(out.name + ".tmp")
    blocker.mkdir()
    with pytest.raises(OSError):
        run_batch(_job(source, out, **settings))
    blocker.rmdir()
    committed = sorted(_parts(out).glob("chunk-*.results.jsonl"))
    assert committed and not out.exists()
    return committed


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- 1. resume: same job only, and the final row count ------------------------------------------------------
def test_resume_with_the_same_settings_is_byte_identical(tmp_path):
    source = _notes_csv(tmp_path / "notes.csv")
    reference = tmp_path / "reference.jsonl"
    run_batch(_job(source, reference, chunk_size=10))
    out = tmp_path / "out.jsonl"
    assert len(_interrupted(source, out, chunk_size=10)) == 3
    summary = run_batch(_job(source, out, chunk_size=10, workers=2))  # workers may change
    assert summary["skipped_already_committed"] == 30 and summary["coded_this_run"] == 0
    assert summary["rows"] == summary["coded"] == 30
    assert out.read_bytes() == reference.read_bytes()
    assert not _parts(out).exists()


def test_progress_counts_rows_of_the_whole_input_from_what_is_committed(tmp_path, capsys):
    """The bar's total is the input's rows (bad rows too) and a resumed run starts it at the rows committed
    before, so it ends at total/total whatever was quarantined or done earlier."""
    rows = _good_rows(28) + [{"id": "", "text": "no id"}, {"id": "x", "text": " "}]  # 2 quarantined rows
    source = _write_csv(tmp_path / "notes.csv", rows)
    out = tmp_path / "out.jsonl"
    committed = _interrupted(source, out, chunk_size=10)
    last = committed[-1]  # the chunk with both bad rows: forget it, as if the crash came before its commit
    last.unlink()
    last.with_name(last.name.replace(".results.", ".quarantine.")).unlink()
    capsys.readouterr()
    calls: list[tuple[int, int]] = []  # the callback an app's progress bar uses sees the same counts
    job = _job(source, out, chunk_size=10, progress=True, on_progress=lambda *c: calls.append(c))
    summary = run_batch(job)
    bar = capsys.readouterr().err
    assert summary["coded_this_run"] == 8 and summary["quarantined"] == 2
    assert "20/30" in bar and "30/30" in bar and "/28" not in bar
    assert calls == [(20, 30), (30, 30)]


def test_count_rows_matches_the_rows_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from domains.medical.batch_io import count_rows, read_rows

    multiline = [{"id": "a", "text": "line one\nline two"}, {"id": "b", "text": 'quote "x", comma'}]
    csv_source = _write_csv(tmp_path / "notes.csv", multiline + _good_rows(3), encoding="utf-8-sig")
    _write_jsonl_with_bad_rows(tmp_path / "bad.jsonl")
    (tmp_path / "blank.jsonl").write_bytes(b'{"id": "1", "text": "x"}\n\n   \n{"id": "2"}\nnot json\n')
    parquet = tmp_path / "notes.parquet"
    pq.write_table(pa.Table.from_pylist(_good_rows(7)), parquet)
    for path in (csv_source, tmp_path / "bad.jsonl", tmp_path / "blank.jsonl", parquet):
        assert count_rows(path) == sum(1 for _ in read_rows(path)), path.name
    assert count_rows(csv_source) == 5 and count_rows(tmp_path / "blank.jsonl") == 3


# a setting (or the input) that differs from the earlier run's, and the words that name it in the refusal
CHANGES = [
    ({"chunk_size": 7}, "--chunk-size"),
    ({"mode": "rules+retrieval"}, "--mode"),
    ({"max_chars": 50}, "--max-chars"),
    ({"id_col": "note_key"}, "--id-col"),
    ({"text_col": "body"}, "--text-col"),
    ({"input": "other"}, "input file"),
]


def _changed_run(tmp_path, source, changed: dict, n: int):
    """The input and job settings of a second run that changes ``changed`` (``input``: another file of
    ``n`` notes) from a first run of ``source`` with chunk size 10."""
    settings = {"chunk_size": 10, **changed}
    if settings.pop("input", None):
        source = _notes_csv(tmp_path / "other.csv", n=n)
    return source, settings


@pytest.mark.parametrize(("changed", "flag"), CHANGES)
def test_resume_with_other_settings_or_input_is_refused(tmp_path, changed, flag):
    source = _notes_csv(tmp_path / "notes.csv")
    out = tmp_path / "out.jsonl"
    committed = _interrupted(source, out, chunk_size=10)
    source, settings = _changed_run(tmp_path, source, changed, n=35)
    with pytest.raises(DSuiteError, match="committed chunk") as refused:
        run_batch(_job(source, out, **settings))
    message = str(refused.value)
    assert flag in message and "--restart" in message and "original settings" in message
    assert "JobConfig" not in message  # the CLI user's flag, not the Python field
    assert sorted(_parts(out).glob("chunk-*.results.jsonl")) == committed and not out.exists()
    # --restart starts over with the new settings
    summary = run_batch(_job(source, out, restart=True, **settings))
    assert (
        summary["skipped_already_committed"] == 0
        and summary["rows"] == summary["coded"] + summary["quarantined"]
    )
    assert len(_lines(out)) == summary["coded"] and len({r["id"] for r in _lines(out)}) == summary["coded"]


def test_resume_after_the_rule_files_changed_is_refused(tmp_path, monkeypatch):
    """Edited rules (a user extending context_rules.json mid-job) would code the rest differently."""
    rules = [tmp_path / path.name for path in batch.DATA_FILES]
    for path, copy in zip(batch.DATA_FILES, rules, strict=True):
        shutil.copy(path, copy)
    monkeypatch.setattr(batch, "DATA_FILES", tuple(rules))
    source, out = _notes_csv(tmp_path / "notes.csv"), tmp_path / "out.jsonl"
    _interrupted(source, out, chunk_size=10)
    rules[0].write_text(rules[0].read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(DSuiteError, match="rule or index files in data/medical changed"):
        run_batch(_job(source, out, chunk_size=10))


def test_resume_after_the_suite_was_upgraded_is_refused(tmp_path, monkeypatch):
    """A new release of the coder's code (a fixed rule in Python, say) would code the rest differently."""
    code = tmp_path / "coder.py"
    code.write_text("# the coder, first release\n", encoding="utf-8")
    monkeypatch.setattr(batch, "CODE_FILES", (code,))
    source, out = _notes_csv(tmp_path / "notes.csv"), tmp_path / "out.jsonl"
    _interrupted(source, out, chunk_size=10)
    code.write_text("# the coder, second release\n", encoding="utf-8")
    with pytest.raises(DSuiteError, match="the suite was upgraded"):
        run_batch(_job(source, out, chunk_size=10))


def test_resume_with_another_embedding_precision_is_refused(tmp_path, monkeypatch):
    """fp32 and int8 query embeddings retrieve slightly different codes: one job keeps one precision."""
    source, out = _notes_csv(tmp_path / "notes.csv"), tmp_path / "out.jsonl"
    monkeypatch.setenv("DSUITE_MEDICAL_EMBEDDINGS", "fp32")
    _interrupted(source, out, chunk_size=10, mode="rules+retrieval")
    monkeypatch.setenv("DSUITE_MEDICAL_EMBEDDINGS", "int8")
    with pytest.raises(DSuiteError, match=r"embeddings:fp32.*embeddings:int8.*DSUITE_MEDICAL_EMBEDDINGS"):
        run_batch(_job(source, out, chunk_size=10, mode="rules+retrieval"))


def test_csv_output_has_one_row_per_code_and_lists_every_note(tmp_path):
    rows = _good_rows(6) + [{"id": "plain", "text": "Routine visit, feeling well."}]
    source = _write_csv(tmp_path / "notes.csv", rows)
    run_batch(_job(source, tmp_path / "coded.jsonl"))
    summary = run_batch(_job(source, tmp_path / "coded.csv"))
    assert summary["coded"] == 7
    assert (tmp_path / "coded.csv").read_bytes().startswith(codecs.BOM_UTF8)  # Excel reads it as UTF-8
    with (tmp_path / "coded.csv").open(encoding="utf-8-sig", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == CSV_COLUMNS
    results = _lines(tmp_path / "coded.jsonl")
    expected = [(r["id"], c["code"]) for r in results for c in r["codes"]] + [("plain", "")]
    inferred = sum(c["support"] == "inferred" for r in results for c in r["codes"])
    assert (summary["codes"], summary["codes_inferred"]) == (len(expected) - 1, inferred)
    assert sorted((row["id"], row["code"]) for row in table) == sorted(expected)
    texts = {r["id"]: r["text"] for r in rows}
    for row in table:
        if row["code"]:
            assert texts[row["id"]][int(row["start"]) : int(row["end"])] == row["evidence"]
    with pytest.raises(DSuiteError, match=r"\.jsonl, \.parquet or \.csv"):
        run_batch(_job(source, tmp_path / "coded.xlsx"))


def test_parts_without_a_manifest_are_refused(tmp_path):
    source = _notes_csv(tmp_path / "notes.csv")
    out = tmp_path / "out.jsonl"
    _interrupted(source, out, chunk_size=10)
    (_parts(out) / "job.json").unlink()
    with pytest.raises(DSuiteError, match="no readable job manifest.*--restart"):
        run_batch(_job(source, out, chunk_size=10))


def test_a_damaged_part_fails_the_row_count_check(tmp_path):
    source = _notes_csv(tmp_path / "notes.csv")
    out = tmp_path / "out.jsonl"
    first = _interrupted(source, out, chunk_size=10)[0]
    first.write_text(
        "".join(first.read_text(encoding="utf-8").splitlines(keepends=True)[1:]), encoding="utf-8"
    )
    with pytest.raises(DSuiteError, match=r"Row count check failed: the input has 30 rows.*29 coded"):
        run_batch(_job(source, out, chunk_size=10))
    assert not out.exists() and _parts(out).is_dir()


# -- 1b. a finished job: a rerun finds it complete; another job is refused as for an unfinished one ---------
def test_rerun_of_a_finished_job_codes_nothing_and_keeps_its_results(tmp_path, monkeypatch):
    source = _notes_csv(tmp_path / "notes.csv")
    out = tmp_path / "out.jsonl"
    first = run_batch(_job(source, out, chunk_size=10))
    results, quarantine = out.read_bytes(), Path(first["quarantine"]).read_bytes()
    recorded = json.loads(out.with_name(out.name + ".summary.json").read_text(encoding="utf-8"))
    assert recorded["job"]["chunk_size"] == 10 and recorded["job"]["input"]["size"] == source.stat().st_size
    assert first["already_complete"] is False and "job" not in first
    monkeypatch.setattr(batch, "_code", lambda *args: pytest.fail("a finished job was coded again"))
    again = run_batch(_job(source, out, chunk_size=10, workers=2))  # workers may change
    assert again["already_complete"] is True and "job" not in again
    counts = {key: again[key] for key in ("rows", "coded", "coded_this_run", "skipped_already_committed")}
    assert counts == {"rows": 30, "coded": 30, "coded_this_run": 0, "skipped_already_committed": 30}
    assert out.read_bytes() == results and Path(again["quarantine"]).read_bytes() == quarantine
    assert not _parts(out).exists()


@pytest.mark.parametrize(("changed", "flag"), CHANGES)
def test_a_finished_job_is_not_replaced_by_a_run_with_other_settings(tmp_path, changed, flag):
    source = _notes_csv(tmp_path / "notes.csv")
    out = tmp_path / "out.jsonl"
    run_batch(_job(source, out, chunk_size=10))
    results = out.read_bytes()
    source, settings = _changed_run(tmp_path, source, changed, n=8)
    with pytest.raises(DSuiteError, match="finished earlier run") as refused:
        run_batch(_job(source, out, **settings))
    message = str(refused.value)
    assert flag in message and "--restart" in message and "JobConfig" not in message
    assert out.read_bytes() == results and not _parts(out).exists()
    # --restart codes the input again with the new settings and replaces the results
    summary = run_batch(_job(source, out, restart=True, **settings))
    assert summary["already_complete"] is False and summary["skipped_already_committed"] == 0
    assert len(_lines(out)) == summary["coded"] == summary["rows"] - summary["quarantined"]


def test_an_output_that_records_no_job_is_not_replaced(tmp_path):
    source = _notes_csv(tmp_path / "notes.csv", n=5)
    out = tmp_path / "out.jsonl"
    out.write_text("results of another program\n", encoding="utf-8")
    with pytest.raises(DSuiteError, match="records no batch job.*--restart"):
        run_batch(_job(source, out))
    assert out.read_text(encoding="utf-8") == "results of another program\n" and not _parts(out).exists()
    assert run_batch(_job(source, out, restart=True))["coded"] == len(_lines(out)) == 5


def test_cli_rerun_of_a_finished_job(tmp_path):
    source, other = _notes_csv(tmp_path / "notes.csv"), _notes_csv(tmp_path / "mt8.csv", n=8)
    out = tmp_path / "res30.jsonl"
    args = ("medical", "code-batch", str(source), "--out", str(out), "--mode", "dictionary", "--quiet")
    assert invoke_dsuite(*args).returncode == 0
    again = invoke_dsuite(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    summary = last_json(again.stdout)
    assert summary["already_complete"] and (summary["coded_this_run"], summary["coded"]) == (0, 30)
    assert "already complete" in again.stderr and "--restart" in again.stderr
    replaced = invoke_dsuite(*args[:2], str(other), *args[3:])
    assert replaced.returncode == 2 and "finished earlier run" in replaced.stderr, replaced.stderr[-2000:]
    assert "input file's content" in replaced.stderr and "Traceback" not in replaced.stderr
    assert len(_lines(out)) == 30


# -- 2. byte-order marks and encodings ----------------------------------------------------------------------
def test_utf8_bom_in_csv_and_jsonl_is_read(tmp_path):
    rows = _good_rows(5)
    csv_source = _write_csv(tmp_path / "excel.csv", rows, encoding="utf-8-sig")
    assert csv_source.read_bytes().startswith(codecs.BOM_UTF8)
    summary = run_batch(_job(csv_source, tmp_path / "from_csv.jsonl"))
    assert summary["coded"] == 5 and summary["quarantined"] == 0
    jsonl_source = tmp_path / "bom.jsonl"
    jsonl_source.write_bytes(codecs.BOM_UTF8 + b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    summary = run_batch(_job(jsonl_source, tmp_path / "from_jsonl.jsonl"))
    assert summary["coded"] == 5 and summary["quarantined"] == 0


@pytest.mark.parametrize(
    ("name", "delimiter"), [("excel-eu.csv", ";"), ("tabs.csv", "\t"), ("notes.tsv", "\t")]
)
def test_semicolon_and_tab_delimited_notes_are_read_like_commas(tmp_path, name, delimiter):
    """A European Excel's "CSV" uses semicolons, and exports from databases often tabs: the delimiter comes
    from the header line (a .tsv file is tab-delimited), and a note's own commas stay in its text."""
    rows = [{**r, "text": r["text"] + ", stable, on lisinopril"} for r in _good_rows(4)]
    source = tmp_path / name
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "coded.jsonl"
    summary = run_batch(_job(source, out))
    assert summary["coded"] == 4 and summary["quarantined"] == 0
    assert [r["id"] for r in _lines(out)] == [r["id"] for r in rows]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_utf16_or_utf32_input_is_refused_with_how_to_convert(tmp_path, encoding):
    rows = _good_rows(3)
    csv_source = _write_csv(tmp_path / "notes.csv", rows, encoding=encoding)
    jsonl_source = tmp_path / "notes.jsonl"
    jsonl_source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding=encoding)
    for source in (csv_source, jsonl_source):
        out = tmp_path / f"{source.suffix[1:]}.jsonl"
        with pytest.raises(
            DSuiteError, match=r"is not UTF-8: .*(UTF-16|UTF-32|NUL bytes).*iconv -f"
        ) as refused:
            run_batch(_job(source, out))
        assert "no column" not in str(refused.value) and not _parts(out).exists()


def test_a_latin1_row_is_quarantined_with_its_readable_id(tmp_path):
    rows = _good_rows(3) + [
        {"id": "n-latin", "text": "Caf\xe9 owner with fever."},
        {"id": "caf\xe9", "text": "x"},
    ]
    csv_source = _write_csv(tmp_path / "notes.csv", rows, encoding="latin-1")
    summary = run_batch(_job(csv_source, tmp_path / "csv.jsonl"))
    quarantine = _lines(Path(summary["quarantine"]))
    assert [(q["row"], q["id"]) for q in quarantine] == [(3, "n-latin"), (4, None)]  # an unreadable id: None
    assert all(q["reason"].startswith("undecodable: not UTF-8 in column(s)") for q in quarantine)
    jsonl_source = tmp_path / "notes.jsonl"
    jsonl_source.write_bytes(b'{"id": "j1", "text": "fever"}\n{"id": "j-latin", "text": "caf\xe9"}\n')
    summary = run_batch(_job(jsonl_source, tmp_path / "jsonl.jsonl"))
    assert [(q["row"], q["id"]) for q in _lines(Path(summary["quarantine"]))] == [(1, "j-latin")]


def test_quarantined_rows_name_the_line_an_editor_shows(tmp_path):
    """``line`` is where the record starts in the file (the CSV header is line 1; a quoted note over several
    lines and blank lines count), beside the 0-based ``row``."""
    csv_source = tmp_path / "notes.csv"
    csv_source.write_text(
        'id,text\nn1,"Fever and cough.\nSecond line of the same note."\n\nn2,\nn3,Headache.\nn1,Again.\n',
        encoding="utf-8",
    )
    summary = run_batch(_job(csv_source, tmp_path / "csv.jsonl"))
    assert summary["coded"] == 2
    quarantine = _lines(Path(summary["quarantine"]))
    assert [(q["row"], q["line"], q["id"]) for q in quarantine] == [(1, 5, "n2"), (3, 7, "n1")]
    assert quarantine[1]["reason"].startswith("duplicate id")
    jsonl_source = tmp_path / "notes.jsonl"
    jsonl_source.write_text('{"id": "j1", "text": "fever"}\n\n\nnot json\n{"id": "j2"}\n', encoding="utf-8")
    summary = run_batch(_job(jsonl_source, tmp_path / "jsonl.jsonl"))
    quarantine = _lines(Path(summary["quarantine"]))
    assert [(q["row"], q["line"]) for q in quarantine] == [(1, 4), (2, 5)]


# -- 3. missing columns, inputs without rows, and a job that codes nothing ----------------------------------
def test_missing_columns_are_refused_before_coding(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"note_id": r["id"], "text": r["text"]} for r in _good_rows(4)]
    sources = [_write_csv(tmp_path / "notes.csv", rows), tmp_path / "notes.parquet", tmp_path / "notes.jsonl"]
    pq.write_table(pa.Table.from_pylist(rows), sources[1])
    sources[2].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for source in sources:
        out = tmp_path / f"{source.suffix[1:]}.jsonl"
        with pytest.raises(DSuiteError, match=r"no column 'id' \(--id-col\).*'note_id', 'text'.*--text-col"):
            run_batch(_job(source, out))
        assert not _parts(out).exists() and not out.exists()
        with pytest.raises(DSuiteError, match=r"'body' \(--text-col\)"):
            run_batch(_job(source, out, id_col="note_id", text_col="body"))
        assert run_batch(_job(source, out, id_col="note_id"))["coded"] == 4


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("empty.jsonl", b"", "it is empty: 0 bytes"),
        ("blank.jsonl", b"\n   \n", "blank lines only"),
        ("empty.csv", b"", "it is empty: 0 bytes"),
        ("header.csv", b"id,text\n", "a header row only"),
    ],
)
def test_an_input_without_rows_is_refused(tmp_path, name, content, why):
    source = tmp_path / name
    source.write_bytes(content)
    out = tmp_path / "o.jsonl"
    with pytest.raises(DSuiteError, match=rf"has no rows to code \(.*{why}"):
        run_batch(_job(source, out))
    assert not _parts(out).exists() and not out.exists()


def test_an_input_without_rows_still_has_its_columns_checked(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    header_only = tmp_path / "header.csv"
    header_only.write_text("note_id,body\n", encoding="utf-8")
    with pytest.raises(DSuiteError, match=r"no column 'id' \(--id-col\).*'note_id', 'body'"):
        run_batch(_job(header_only, tmp_path / "o.jsonl"))
    with pytest.raises(DSuiteError, match="has no rows to code"):
        run_batch(_job(header_only, tmp_path / "o.jsonl", id_col="note_id", text_col="body"))
    no_rows = tmp_path / "notes.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), no_rows)
    with pytest.raises(DSuiteError, match=r"no column 'body' \(--text-col\)"):
        run_batch(_job(no_rows, tmp_path / "o.jsonl", text_col="body"))
    with pytest.raises(DSuiteError, match=r"has no rows to code \(its table has 0 rows\)"):
        run_batch(_job(no_rows, tmp_path / "o.jsonl"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return invoke_dsuite("medical", "code-batch", *args, "--quiet")


def test_cli_exit_codes_for_a_missing_column_and_for_nothing_coded(tmp_path):
    source = _write_csv(tmp_path / "notes.csv", [{"ID": "1", "text": "fever"}])
    done = _cli(str(source), "--out", str(tmp_path / "a.jsonl"), "--mode", "dictionary")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "'ID', 'text'" in done.stderr and "--id-col" in done.stderr and "Traceback" not in done.stderr
    empty_texts = _write_csv(tmp_path / "empty.csv", [{"id": str(i), "text": " "} for i in range(3)])
    done = _cli(str(empty_texts), "--out", str(tmp_path / "b.jsonl"), "--mode", "dictionary")
    assert done.returncode == 3, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "no notes coded" and summary["rows"] == 3 and summary["quarantined"] == 3
    assert done.stderr.lower().count("no note was coded") == 1  # said once, not logged as well
    header_only = tmp_path / "header.csv"
    header_only.write_text("id,text\n", encoding="utf-8")
    done = _cli(str(header_only), "--out", str(tmp_path / "c.jsonl"), "--mode", "dictionary")
    assert done.returncode == 2 and "has no rows to code" in done.stderr, done.stderr[-2000:]


# -- 4. a bad mode with several workers, and a worker that cannot start -------------------------------------
def test_bad_mode_with_two_workers_fails_fast(tmp_path):
    source = _write_csv(tmp_path / "notes.csv", _good_rows(4))
    done = _cli(
        str(source), "--out", str(tmp_path / "o.jsonl"), "--mode", "bogus", "--workers", "2"
    )
    assert done.returncode == 2 and "Unknown coder mode 'bogus'" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "o.jsonl.parts").exists()


def test_a_worker_that_cannot_start_ends_the_job(tmp_path):
    # run_batch refuses the bad mode up front; here the pool itself is given one, as a broken install would
    cfg = _job(tmp_path / "unused.csv", tmp_path / "o.jsonl", mode="bogus", workers=2)
    chunk = Chunk(0, notes=[("n1", "fever")], note_rows=[0], rows=1)
    with pytest.raises(DSuiteError, match="could not set up the coder.*Unknown coder mode"):
        batch._run_pool(cfg, iter([chunk]), lambda chunk, outcomes: None)


def test_two_local_workers_give_the_same_output_as_one(tmp_path):
    source = _write_csv(tmp_path / "notes.csv", _good_rows(40) + [{"id": "", "text": "no id"}])
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    run_batch(_job(source, one, chunk_size=8))
    summary = run_batch(_job(source, two, chunk_size=8, workers=2))
    assert summary["coded"] == 40 and summary["quarantined"] == 1
    assert two.read_bytes() == one.read_bytes()


# -- 5. unreadable Parquet ----------------------------------------------------------------------------------
def test_corrupt_or_mislabelled_parquet_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    renamed = tmp_path / "renamed.parquet"
    shutil.copy(_write_csv(tmp_path / "notes.csv", _good_rows(3)), renamed)
    good = tmp_path / "good.parquet"
    pq.write_table(pa.Table.from_pylist(_good_rows(50)), good)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for source in (renamed, truncated):
        out = tmp_path / f"{source.stem}.jsonl"
        with pytest.raises(DSuiteError, match="not a readable Parquet file"):
            run_batch(_job(source, out))
        assert not _parts(out).exists()


# -- 6. the output path -------------------------------------------------------------------------------------
def test_unwritable_output_paths_are_refused_before_coding(tmp_path):
    source = _write_csv(tmp_path / "notes.csv", _good_rows(3))
    folder = tmp_path / "coded.jsonl"
    folder.mkdir()
    with pytest.raises(DSuiteError, match="existing folder"):
        run_batch(_job(source, folder))
    assert not _parts(folder).exists()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(DSuiteError, match="is a file, not a folder"):
        run_batch(_job(source, a_file / "sub" / "coded.jsonl"))


# -- 7. a JSON array in a .jsonl file -----------------------------------------------------------------------
def test_a_json_array_in_a_jsonl_file_is_refused(tmp_path):
    source = tmp_path / "notes.jsonl"
    source.write_text(json.dumps(_good_rows(6), indent=2), encoding="utf-8")
    with pytest.raises(DSuiteError, match="one JSON object per line"):
        run_batch(_job(source, tmp_path / "o.jsonl"))
    assert not _parts(tmp_path / "o.jsonl").exists()


# -- 8. quarantine rows -------------------------------------------------------------------------------------
def test_coding_failures_are_quarantined_with_their_row(tmp_path):
    cfg = _job(tmp_path / "unused.csv", tmp_path / "o.jsonl")
    batch._parts_dir(cfg).mkdir()
    chunk = Chunk(1, notes=[("a", "Fever and cough."), ("b", "  ")], note_rows=[(4, 6), (7, 9)], rows=3)
    missing = {"row": 5, "line": 7, "id": None, "reason": "missing id: column 'id' is absent or empty"}
    chunk.quarantined.append(missing)
    outcomes = batch.code_notes(chunk.notes, "dictionary")  # "b" fails: the coder gets no text
    assert batch._commit(cfg, chunk, outcomes) == (1, 2)
    quarantine = _lines(batch._part_paths(cfg, 1)[1])
    assert [(q["row"], q["line"]) for q in quarantine] == [(5, 7), (7, 9)] and quarantine[1]["id"] == "b"
    assert quarantine[1]["reason"].startswith("coding failed")


def test_csv_rows_leave_the_section_empty_for_text_before_any_heading():
    from domains.medical.batch_io import csv_rows

    evidence = {"text": "fever", "start": 0, "end": 5}
    code = {"code": "R50.9", "description": "Fever", "score": 1.0, "assertion": "present", "billable": True}
    record = {"id": "n1", "codes": [{**code, "evidence": [{**evidence, "section": "none"}]}]}
    assert csv_rows(record)[0]["section"] == ""
    record["codes"][0]["evidence"][0]["section"] = "assessment"
    assert csv_rows(record)[0]["section"] == "assessment"
