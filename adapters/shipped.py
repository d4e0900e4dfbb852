"""Adapters that ship inside the repository and install themselves into a registry that lacks them.

A shipped adapter is a folder ``data/<domain>/adapter/`` with the peft files (``adapter_model.safetensors``,
``adapter_config.json``), optionally its ``DATA_CARD.md``, and a ``meta.json`` that names it
(``"adapter": "customer_service@1"``), says which base it was trained on (``"base_fingerprint"``) and,
optionally, how to train it again (``"retrain"``, a command). A fresh clone has an empty registry: the first
time an :class:`~adapters.manager.AdapterManager` or an eval system (``eval.systems.load_system``, which the
finance advisor drafts with) is asked for a name the registry lacks and a shipped folder carries, it registers
that copy (as version 1 of a new name, with the shipped meta's training record) and
serves it. Nothing is installed for another base: the error says how to train the adapter for the base in
use.
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from adapters.errors import AdapterBaseMismatchError
from adapters.registry import CARD_FILE, META_FILE, AdapterRef, Registry, parse_spec
from core_model.paths import PROJECT_DATA

logger = logging.getLogger(__name__)

SHIPPED_FOLDER = "adapter"  # data/<domain>/adapter/
PEFT_FILES = ("adapter_model.safetensors", "adapter_config.json")


def ship(ref: AdapterRef, folder: Path, retrain: str, **record) -> dict:
    """Copy the registered adapter ``ref`` into ``folder`` (``data/<domain>/adapter/``) as a shipped adapter:
    its peft files, its data card and a ``meta.json`` naming it, its base, how to train it again
    (``retrain``, a command), ``record`` (e.g. the training set's size) and its training record.

    Returns:
        The written meta.
    """
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for name in (*PEFT_FILES, CARD_FILE):
        shutil.copy2(ref.path / name, folder / name)
    meta = {
        "adapter": ref.key,
        "base_fingerprint": ref.base_fingerprint,
        "retrain": retrain,
        **record,
        "training": ref.meta.get("training", {}),
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    logger.info("shipped %s in %s", ref.key, folder)
    return meta


def train_and_ship(
    name: str,
    data: Path,
    folder: Path,
    *,
    retrain: str,
    config,
    card: Callable[[int], str],
    base: str | None = None,
    device: str | None = None,
    **record,
) -> dict:
    """Train adapter ``name`` on the JSONL ``data`` with ``config``, register it in the default registry
    and ``ship`` a copy to ``folder``; the meta records ``training_records`` (the lines of ``data``) and
    ``record``.

    A shipped adapter serves its domain's pipeline (state tracking, sentiment), not free chat, so it is
    registered without router exemplars: the hub's router never sends a chat message to it. Asked "I want to
    cancel my order, it never arrived." the customer-service adapter wrote "nouser nouser nouser" and the
    finance adapter "No error."; the bare base answers such messages better.

    Args:
        card: the data card, given the number of training records.
        base: the base checkpoint (default: the embedded one).
        device: where to train (default: a GPU when PyTorch sees one, else the CPU).

    Returns:
        ``{"adapter": "name@version", "shipped": folder, "training": ...}``.
    """
    from adapters.train import train_adapter
    from core_model import load_base

    with Path(data).open(encoding="utf-8") as handle:
        records = sum(1 for line in handle if line.strip())
    ref = train_adapter(
        name,
        data,
        base=load_base(base),
        config=config,
        registry=Registry(),
        data_card=card(records),
        device=device,
        exemplars=[],  # not routed (see above)
    )
    meta = ship(ref, folder, retrain, training_records=records, **record)
    return {"adapter": ref.key, "shipped": str(folder), "training": meta["training"]}


def shipped_adapters(root: Path = PROJECT_DATA) -> dict[str, Path]:
    """The adapters shipped under ``root`` (``<domain>/adapter/meta.json``): name -> folder."""
    found = {}
    for meta_path in sorted(Path(root).glob(f"*/{SHIPPED_FOLDER}/{META_FILE}")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if "adapter" in meta:
            found[parse_spec(meta["adapter"])[0]] = meta_path.parent
    return found


def install_shipped(
    registry: Registry, name: str, base_fingerprint: str | None = None, root: Path = PROJECT_DATA
) -> AdapterRef | None:
    """Register the shipped copy of adapter ``name`` in ``registry`` unless the registry has that name.

    Args:
        registry: where to install it.
        name: the adapter name (a ``name@version`` spec is cut to its name).
        base_fingerprint: the base it will be served on; a copy trained on another base is refused.
        root: the folder holding ``<domain>/adapter/`` (default: the repository's ``data/``).

    Returns:
        The new ref, or None when the registry already has ``name`` or nothing ships under it.

    Raises:
        AdapterBaseMismatchError: the shipped copy was trained on a different base.
    """
    name = parse_spec(name)[0]
    folder = shipped_adapters(root).get(name)
    if folder is None or name in registry.names():
        return None
    with _install_lock(registry):  # processes asking at the same moment: one installs, the others see it
        if name in registry.names():
            return None
        return _install(registry, name, folder, base_fingerprint)


def upgrade_shipped(
    registry: Registry, name: str, base_fingerprint: str, root: Path = PROJECT_DATA
) -> AdapterRef | None:
    """Register the shipped copy of ``name`` as its next version when no registered version fits the base.

    A registry filled before the repository shipped a newer copy (say, one trained for a base whose
    conversion changed) holds only versions the loaded base refuses. Then the shipped copy, when it was
    trained on this base, is registered as the next version (and becomes ``latest``); versions trained for
    this base, the user's own among them, are never replaced.

    Returns:
        The new ref, or None when nothing needed or allowed an upgrade.
    """
    name = parse_spec(name)[0]
    folder = shipped_adapters(root).get(name)
    if folder is None:
        return None
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    if meta.get("base_fingerprint") != base_fingerprint:
        return None
    with _install_lock(registry):
        versions = registry.versions(name)
        fits = [v for v in versions if registry.resolve(f"{name}@{v}").base_fingerprint == base_fingerprint]
        if not versions or fits:
            return None
        ref = _install(registry, name, folder, base_fingerprint)
    logger.warning(
        "no version of adapter %s in %s fits the loaded base %s: installed the shipped copy as %s",
        name,
        registry.root,
        base_fingerprint,
        ref.key,
    )
    return ref


def resolve_with_shipped(
    registry: Registry, spec: str, base_fingerprint: str, root: Path | None = PROJECT_DATA
) -> AdapterRef:
    """The registry version ``spec`` names, installing the shipped copy first when the registry lacks the
    name (a fresh clone), or, for a bare name whose versions were all trained for other bases, when the
    shipped copy fits ``base_fingerprint`` (``upgrade_shipped``). ``root`` None: install nothing.

    Raises:
        AdapterNotFoundError: neither the registry nor ``root`` has the name.
        AdapterBaseMismatchError: the shipped copy was trained on a different base.
    """
    from adapters.errors import AdapterNotFoundError

    try:
        ref = registry.resolve(spec)
    except AdapterNotFoundError:
        if root is None or install_shipped(registry, spec, base_fingerprint, root) is None:
            raise
        return registry.resolve(spec)
    bare = parse_spec(spec)[1] in (None, "latest")
    if bare and root is not None and ref.base_fingerprint != base_fingerprint:
        if upgrade_shipped(registry, spec, base_fingerprint, root) is not None:
            return registry.resolve(spec)
    return ref


@contextmanager
def _install_lock(registry: Registry) -> Iterator[None]:
    """Serialise installs across processes. Its own lock file: ``register_folder`` takes the registry's lock,
    and flock does not nest across file handles."""
    with (registry.root / ".install.lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install(registry: Registry, name: str, folder: Path, base_fingerprint: str | None) -> AdapterRef:
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    if base_fingerprint and meta.get("base_fingerprint") != base_fingerprint:
        retrain = meta.get("retrain") or f"`dsuite adapters train {name} ...` on the base in use"
        raise AdapterBaseMismatchError(
            f"The shipped adapter '{name}' ({folder}) was trained on base {meta.get('base_fingerprint')}, "
            f"not on the loaded base {base_fingerprint}. Load that base (--base PATH), or train the adapter "
            f"for this one: {retrain}."
        )
    card = folder / CARD_FILE
    ref = registry.register_folder(
        name,
        folder,
        base_fingerprint=meta["base_fingerprint"],
        training=meta.get("training"),
        data_card=card.read_text(encoding="utf-8") if card.is_file() else "",
    )
    logger.info("installed the shipped adapter %s from %s", ref.key, folder)
    return ref
