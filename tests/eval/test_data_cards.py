"""Data cards: every card follows the template; every shared set, loader, task and project folder has one."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
from pathlib import Path

import pytest

import eval.data
from core_model.errors import DSuiteError
from eval.data.paths import PROJECT_DATA, datasets_root

REPO = Path(__file__).resolve().parents[2]
CARDS = REPO / "data_cards"
REQUIRED = ["Source", "License", "Size", "Fields", "Splits", "Intended use", "Known limits"]
EXTERNAL = [
    "negex_context_annotations", "codiesp_en", "mtsamples", "fibo_glossary", "financial_phrasebank",
    "tatqa_test", "ohlcv_daily", "banking77", "clinc150_oos", "bitext_customer_support", "multiwoz",
    "sgd_subset",
]  # fmt: skip
NOT_LOADERS = {"paths"}
# project data folders whose card has not landed yet: strict xfail, so a landed card makes this fail
# until the entry is removed here (the lead decides at integration).
CARD_OWED: dict[str, str] = {}

# data sets named by a registered Task.dataset whose card has not landed yet (checked both ways)
DATASET_CARD_OWED: dict[str, str] = {}
# cards that exist but do not follow TEMPLATE.md yet: strict xfail, same rule as above
NOT_TEMPLATED: dict[str, str] = {}


def card_files() -> list[Path]:
    return sorted(p for p in CARDS.glob("*.md") if p.name != "TEMPLATE.md")


def sections(text: str) -> list[tuple[str, str]]:
    """``(heading, body)`` of each ``## `` section, in order (HTML comments dropped)."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    parts = re.split(r"^## +(.+?)\s*$", text, flags=re.M)
    return [(parts[i].strip(), parts[i + 1].strip()) for i in range(1, len(parts), 2)]


def labelled_parts(text: str) -> list[tuple[str, int, int]]:
    """``(name, start, label end)`` per required part: a ``## Name`` heading or a ``- **Name**:`` bullet."""
    text = re.sub(r"<!--.*?-->", lambda m: " " * len(m.group(0)), text, flags=re.S)
    found = []
    for name in REQUIRED:
        pattern = rf"^(?:## +{re.escape(name)}\s*$|- +\*{{0,2}}{re.escape(name)}\*{{0,2}}\s*:)"
        match = re.search(pattern, text, flags=re.M | re.I)
        if match:
            found.append((name, match.start(), match.end()))
    return found


def check_card(path: Path) -> list[str]:
    """Problems of one card against the template (empty when it follows it).

    The required parts are ``## Name`` sections (as in TEMPLATE.md) or, equivalently, ``- **Name**:`` bullets,
    all present, in the template's order, each with text.
    """
    text = path.read_text(encoding="utf-8")
    problems = []
    if not text.startswith("# ") or len(text.splitlines()[0]) < 5:
        problems.append("the first line must be a '# ' title")
    parts = labelled_parts(text)
    names = [name for name, _, _ in parts]
    if names != REQUIRED:
        problems.append(f"must have {REQUIRED} in this order, found {names}")
    if [start for _, start, _ in parts] != sorted(start for _, start, _ in parts):
        problems.append("the required parts are out of order")
    bounds = sorted(parts, key=lambda part: part[1])
    for i, (name, _, label_end) in enumerate(bounds):
        stop = bounds[i + 1][1] if i + 1 < len(bounds) else len(text)
        body = re.sub(r"<!--.*?-->", "", text[label_end:stop], flags=re.S).strip()
        if len(body) < 5:
            problems.append(f"section '{name}' is empty or too short")
    placeholders = re.findall(r"<[A-Z][^<>\n]{3,}>", text)
    if placeholders:
        problems.append(f"template placeholders left: {placeholders[:3]}")
    return problems


def test_template_has_the_required_sections_and_the_checker_catches_bad_cards(tmp_path):
    template = (CARDS / "TEMPLATE.md").read_text(encoding="utf-8")
    assert [h for h, _ in sections(template)] == REQUIRED
    bullets = tmp_path / "bullets.md"
    bullets.write_text(
        "# A set\n\n"
        + "".join(f"- **{name}**: enough words to describe this part well.\n" for name in REQUIRED)
    )
    assert check_card(bullets) == []
    assert check_card(CARDS / "TEMPLATE.md"), "the raw template must not pass as a card (placeholders)"
    bad = tmp_path / "bad.md"
    bad.write_text("# A set\n\n## Source\nSomewhere on the internet, see the link.\n\n## Size\n\n")
    problems = check_card(bad)
    assert any("in this order" in p for p in problems) and any("'Size' is empty" in p for p in problems)


@pytest.mark.parametrize("card", card_files(), ids=lambda p: p.stem)
def test_card_follows_the_template(card, request):
    if card.stem in NOT_TEMPLATED:
        request.applymarker(pytest.mark.xfail(strict=True, reason=NOT_TEMPLATED[card.stem]))
    assert check_card(card) == []


@pytest.mark.parametrize("name", EXTERNAL)
def test_every_external_set_has_a_card(name):
    assert (CARDS / f"{name}.md").is_file(), f"data_cards/{name}.md is missing"


def test_every_shared_dataset_folder_has_a_card():
    try:
        root = datasets_root()
    except DSuiteError as exc:
        pytest.skip(f"shared data sets not present: {exc}")
    folders = sorted(p.name for p in root.glob("*/*") if p.is_dir())
    assert len(folders) >= len(EXTERNAL)
    missing = [f for f in folders if not (CARDS / f"{f}.md").is_file()]
    assert missing == [], f"shared data set folders without a card: {missing}"


def loader_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(eval.data.__path__) if m.name not in NOT_LOADERS)


@pytest.mark.parametrize("module", loader_modules())
def test_every_loader_names_an_existing_card(module):
    loaded = importlib.import_module(f"eval.data.{module}")
    card = getattr(loaded, "CARD", None)
    assert isinstance(card, str), f"eval/data/{module}.py has no module constant CARD = '<card stem>'"
    assert (CARDS / f"{card}.md").is_file(), (
        f"eval/data/{module}.py names CARD '{card}', but data_cards/{card}.md is missing"
    )


def project_folders() -> list[str]:
    return sorted(p.name for p in PROJECT_DATA.iterdir() if p.is_dir()) if PROJECT_DATA.is_dir() else []


def _git_tracked(folder: str) -> bool:
    out = subprocess.run(["git", "ls-files", f"data/{folder}"], cwd=REPO, capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


@pytest.mark.parametrize("folder", project_folders())
def test_every_project_data_folder_has_a_card(folder, request):
    if folder in CARD_OWED:
        request.applymarker(pytest.mark.xfail(strict=True, reason=CARD_OWED[folder]))
    if not _git_tracked(folder):
        pytest.skip(f"data/{folder}/ is not committed yet (work in progress)")
    mention = re.compile(rf"`?data/{re.escape(folder)}\b")
    covering = [c.name for c in card_files() if mention.search(c.read_text(encoding="utf-8"))]
    assert covering, (
        f"data/{folder}/ is project data without a card: add data_cards/<name>.md (see TEMPLATE.md) whose "
        f"Source names `data/{folder}/`."
    )


def test_every_registered_task_reads_a_carded_dataset():
    import domains
    from eval import get_task, task_names

    try:
        domains.load_all()
    except (DSuiteError, ImportError):
        pass  # reported by test_task_coverage; check the tasks that did register
    missing = {}
    for name in task_names():
        try:
            dataset = get_task(name).dataset
        except (DSuiteError, ImportError):
            continue  # a task that does not build is reported by test_task_coverage
        if not (CARDS / f"{dataset}.md").is_file():
            missing[name] = dataset
    owed = {task: ds for task, ds in missing.items() if ds in DATASET_CARD_OWED}
    assert {t: d for t, d in missing.items() if t not in owed} == {}, (
        f"tasks whose data set has no card in data_cards/: {missing}"
    )
    landed = sorted(ds for ds in DATASET_CARD_OWED if (CARDS / f"{ds}.md").is_file())
    assert landed == [], f"cards {landed} have landed: remove them from DATASET_CARD_OWED"
