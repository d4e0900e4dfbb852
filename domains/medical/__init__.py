"""The medical domain: clinical spaCy pipeline, assertion status, ICD-10-CM coding with evidence, batch job.

Entry points the CLI and apps call: ``code_note(text)`` (JSON result), ``assert_concept(text, concept)``,
``run_batch(JobConfig(...))``; spaCy factories ``dsuite_sections``, ``dsuite_clinical_sentences``,
``dsuite_conditions``, ``dsuite_context`` (see ``domains.medical.pipeline``).
"""

from __future__ import annotations

from pathlib import Path

from domains.registry import Domain, register_domain


def code_note(text: str, note_id: str | None = None, mode: str = "full") -> dict:
    """Code one note (see ``domains.medical.coder.IcdCoder.code``)."""
    from domains.medical.coder import get_coder

    return get_coder(mode).code(text, note_id)


def assert_concept(text: str, concept: str) -> dict:
    """Assertion status of ``concept`` inside ``text`` (``assertion`` None and ``found`` False when it is not
    there; see ``domains.medical.assertion.assert_concept``, which refuses an empty text or concept)."""
    from domains.medical.assertion import assert_concept as assert_one

    return assert_one(text, concept)


def run_batch(**settings) -> dict:
    """Run the batch coding job (keyword arguments of ``domains.medical.batch.JobConfig``)."""
    from domains.medical.batch import JobConfig
    from domains.medical.batch import run_batch as run

    return run(JobConfig(**settings))


def build_training_set(out_path: str | Path, limit: int | None = None) -> Path:
    """The medical adapter's training set: CodiEsp train notes -> codes with evidence (chat JSONL)."""
    from domains.medical.training_set import build_training_set as build

    return build(out_path, limit=limit)


def register_tasks() -> None:
    """Register the ``medical.*`` eval tasks."""
    from domains.medical.tasks import register_tasks as register

    register()


DOMAIN = register_domain(
    Domain(
        name="medical",
        title="Medical ICD-10-CM coding",
        adapter_name="medical",
        description="Clinical notes to ICD-10-CM codes with evidence spans; negated, family and hypothetical "
        "mentions are excluded with the reason.",
        pipeline={"code": code_note, "assert": assert_concept, "batch": run_batch},
        build_training_set=build_training_set,
        register_tasks=register_tasks,
        examples=[
            "Patient denies chest pain. Mother had breast cancer. Assessment: community-acquired pneumonia.",
            "History of hypertension and type 2 diabetes; presents with fever and cough.",
            "No evidence of deep vein thrombosis. Possible urinary tract infection.",
        ],
    )
)
register_tasks()
