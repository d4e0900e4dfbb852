"""Batch ICD coding throughput on MTSamples: notes/s and peak RSS per coder mode and worker count.

Prints ONE JSON line: for each mode (``dictionary`` = the rules-only baseline, ``rules+retrieval``,
``full``) and each worker count, notes/s (wall clock, including worker start-up) and the peak resident
memory of the job's process tree. The full coder embeds every sentence (most of its time); ``--full-limit``
measures it on the first N rows only, which a busy 2-core machine needs. The modes that embed run once per
query-embedding precision (``--precisions``: the int8 default, and fp32 as its baseline), and the line gives
the full coder's int8 / fp32 speed ratio. Usage::

    python bench/medical_batch.py [--limit N] [--full-limit N] [--modes dictionary,rules+retrieval,full]
        [--workers 1,2] [--precisions int8,fp32]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil


def _peak_rss(stop: threading.Event, box: list[int]) -> None:
    me = psutil.Process()
    while not stop.is_set():
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        box[0] = max(box[0], total)
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N MTSamples rows (default: all 4,999)")
    parser.add_argument("--full-limit", type=int, default=None, help="first N rows for the full coder")
    parser.add_argument("--modes", default="dictionary,rules+retrieval,full")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--precisions", default="int8,fp32", help="query-embedding precisions to time")
    args = parser.parse_args()

    from domains.medical.batch import JobConfig, run_batch
    from eval.data import mtsamples

    rows = []
    with mtsamples.path().open(encoding="utf-8") as handle:
        for line in handle:
            rows.append(line)
            if args.limit and len(rows) >= args.limit:
                break
    figures = {"notes": len(rows), "input": "mtsamples.jsonl (note_id, transcription; 33 null texts)"}
    if args.full_limit:
        figures["full_coder_rows"] = min(args.full_limit, len(rows))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "mtsamples.jsonl"
        source.write_text("".join(rows), encoding="utf-8")
        full_source = Path(tmp) / "mtsamples_full.jsonl"
        full_source.write_text("".join(rows[: args.full_limit or len(rows)]), encoding="utf-8")
        runs = [
            (mode, workers, precision)
            for mode in args.modes.split(",")
            for workers in (int(w) for w in args.workers.split(","))
            for precision in ([None] if mode == "dictionary" else args.precisions.split(","))
        ]
        for mode, workers, precision in runs:
            if precision:
                os.environ["DSUITE_MEDICAL_EMBEDDINGS"] = precision  # read by the job and its workers
            stop, box = threading.Event(), [0]
            watcher = threading.Thread(target=_peak_rss, args=(stop, box), daemon=True)
            watcher.start()
            started = time.perf_counter()
            summary = run_batch(
                JobConfig(
                    input=full_source if mode == "full" else source,
                    output=Path(tmp) / f"out-{mode}-{workers}-{precision}.jsonl",
                    id_col="note_id",
                    text_col="transcription",
                    workers=workers,
                    mode=mode,
                    chunk_size=32,
                    progress=False,
                )
            )
            seconds = time.perf_counter() - started
            stop.set()
            watcher.join()
            key = f"{mode}|workers={workers}" + (f"|embeddings={precision}" if precision else "")
            figures[key] = {
                "notes_per_s": round(summary["coded"] / seconds, 1),
                "coded": summary["coded"],
                "quarantined": summary["quarantined"],
                "seconds": round(seconds, 1),
                "peak_rss_mb": round(box[0] / 2**20),
            }
    base = figures.get("dictionary|workers=2") or figures.get("dictionary|workers=1")
    ours = figures.get("rules+retrieval|workers=2|embeddings=int8")
    if base and ours:
        figures["rules+retrieval_vs_dictionary_speed_ratio"] = round(
            ours["notes_per_s"] / base["notes_per_s"], 3
        )
    for workers in args.workers.split(","):
        fast = figures.get(f"full|workers={workers}|embeddings=int8")
        exact = figures.get(f"full|workers={workers}|embeddings=fp32")
        if fast and exact:
            figures[f"full_int8_vs_fp32_speed_ratio|workers={workers}"] = round(
                fast["notes_per_s"] / exact["notes_per_s"], 3
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
