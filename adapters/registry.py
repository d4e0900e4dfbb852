"""A versioned folder of LoRA adapters: ``name@version`` with aliases, content hashes and base fingerprints.

Layout under the root (see :func:`registry_root`: ``$DSUITE_REGISTRY``, its older name ``$DSUITE_ADAPTERS``,
else ``$DSUITE_HOME/adapters``)::

    <name>/aliases.json              {"latest": 3, "stable": 2}
    <name>/v<N>/adapter_model.safetensors   LoRA weights in peft's key format
    <name>/v<N>/adapter_config.json         peft LoraConfig as JSON
    <name>/v<N>/meta.json                   content hash, base fingerprint, training settings, metrics, parent
    <name>/v<N>/DATA_CARD.md                the training data card
    <name>/v<N>/exemplars.json              (optional) example requests, for the router

Every write goes to a temporary folder that is renamed into place; alias files are replaced atomically
under a file lock, so several processes can share one registry. Nothing is ever unpickled: weights are
safetensors, everything else is JSON. Every lookup reads the folder again, so a running process sees
adapters registered by another process on its next request.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from adapters.errors import AdapterBaseMismatchError, AdapterIntegrityError, AdapterNotFoundError
from core_model.errors import DSuiteError
from core_model.paths import dsuite_home

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
META_FILE = "meta.json"
CARD_FILE = "DATA_CARD.md"
EXEMPLARS_FILE = "exemplars.json"
ALIASES_FILE = "aliases.json"
HOME_SUBDIR = "adapters"
REGISTRY_ENV = "DSUITE_REGISTRY"
REGISTRY_ENV_ALIAS = "DSUITE_ADAPTERS"  # the older name, still accepted
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class AdapterRef:
    """One registered adapter version."""

    name: str
    version: int
    path: Path
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """``name@version``, unique in a registry."""
        return f"{self.name}@{self.version}"

    @property
    def content_hash(self) -> str:
        """The sha256 of the weights and config recorded at registration."""
        return self.meta.get("content_hash", "")

    @property
    def base_fingerprint(self) -> str:
        """Fingerprint of the base model the adapter was trained on."""
        return self.meta.get("base_fingerprint", "")

    def __str__(self) -> str:
        return self.key


def content_hash(folder: Path) -> str:
    """sha256 over the weights file and the adapter config (``"sha256:<hex>"``)."""
    digest = hashlib.sha256()
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        digest.update(name.encode())
        with (folder / name).open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``name``, ``name@3``, ``name@v3`` or ``name@alias`` into (name, selector or None)."""
    if not isinstance(spec, str) or not spec.strip():
        raise DSuiteError(f"Adapter spec {spec!r} is empty; expected 'name', 'name@version' or 'name@alias'.")
    name, _, selector = spec.strip().partition("@")
    check_name(name)
    return name, (selector or None)


def check_name(name: str) -> str:
    """Validate an adapter name (letters, digits, ``_ . -``; up to 64 characters)."""
    if not _NAME.match(name or ""):
        raise DSuiteError(
            f"Adapter name {name!r} is not valid; use 1-64 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit (no '@' or '/')."
        )
    return name


def registry_root(root: str | os.PathLike | None = None) -> Path:
    """The registry folder every entry point uses (CLI, ``Registry()``, the hub and the admin page).

    Precedence: an explicit ``root`` (``--registry``); else ``$DSUITE_REGISTRY``; else ``$DSUITE_ADAPTERS``
    (its older name); else ``$DSUITE_HOME/adapters``. Both variables may be set only to the same folder.

    Raises:
        DSuiteError: ``DSUITE_REGISTRY`` and ``DSUITE_ADAPTERS`` name different folders.
    """
    if root is not None and str(root).strip():
        return Path(root).expanduser()
    primary = os.environ.get(REGISTRY_ENV, "").strip()
    older = os.environ.get(REGISTRY_ENV_ALIAS, "").strip()
    if primary and older and Path(primary).expanduser().resolve() != Path(older).expanduser().resolve():
        raise DSuiteError(
            f"{REGISTRY_ENV}={primary} and {REGISTRY_ENV_ALIAS}={older} name different adapter registries; "
            "the CLI, the hub and the admin page must share one. "
            f"Unset {REGISTRY_ENV_ALIAS} (the older name) or set both to the same folder."
        )
    if primary or older:
        return Path(primary or older).expanduser()
    return dsuite_home() / HOME_SUBDIR


class Registry:
    """A folder of versioned adapters shared by every process that opens it."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        """Open (or create) a registry.

        Args:
            root: the registry folder; ``None`` means :func:`registry_root`'s choice (``$DSUITE_REGISTRY``,
                else ``$DSUITE_ADAPTERS``, else ``$DSUITE_HOME/adapters``).
        """
        self.root = registry_root(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # ------------------------------------------------------------------ reading
    def names(self) -> list[str]:
        """Names of the registered adapters (with at least one version)."""
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _NAME.match(p.name) and self.versions(p.name)
        )

    def versions(self, name: str) -> list[int]:
        """The versions of ``name``, ascending (empty when unknown)."""
        folder = self.root / name
        if not folder.is_dir():
            return []
        found = []
        for child in folder.iterdir():
            if child.name.startswith("v") and child.name[1:].isdigit() and (child / META_FILE).is_file():
                found.append(int(child.name[1:]))
        return sorted(found)

    def aliases(self, name: str) -> dict[str, int]:
        """The aliases of ``name`` (``latest``, ``stable``...) and the versions they point to."""
        path = self.root / name / ALIASES_FILE
        if not path.is_file():
            return {}
        try:
            return {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
        except (json.JSONDecodeError, ValueError, AttributeError) as exc:
            raise DSuiteError(
                f"Alias file {path} is corrupt ({exc}); fix it or run `dsuite adapters alias`."
            ) from exc

    def resolve(self, spec: str) -> AdapterRef:
        """The version a spec names: ``name`` (``name@latest``), ``name@3``, ``name@v3``, ``name@stable``.

        Raises:
            AdapterNotFoundError: naming what exists instead.
        """
        name, selector = parse_spec(spec)
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise AdapterNotFoundError(
                f"No adapter named '{name}' in registry {self.root} (registered: {known}). "
                "Train one with `dsuite adapters train --name NAME --data FILE.jsonl`."
            )
        aliases = self.aliases(name)
        if selector is None:
            selector = "latest"
        digits = selector[1:] if selector.startswith("v") else selector
        if digits.isdigit():
            version = int(digits)
        elif selector in aliases:
            version = aliases[selector]
        elif selector == "latest":
            version = versions[-1]
        else:
            raise AdapterNotFoundError(
                f"Adapter '{name}' has no alias '{selector}'; aliases: {aliases or 'none'}, "
                f"versions: {versions}."
            )
        if version not in versions:
            raise AdapterNotFoundError(f"Adapter '{name}' has no version {version}; versions: {versions}.")
        return self._ref(name, version)

    def _ref(self, name: str, version: int) -> AdapterRef:
        path = self.root / name / f"v{version}"
        meta = json.loads((path / META_FILE).read_text())
        return AdapterRef(name, version, path, meta)

    def list(self) -> list[dict]:
        """One summary per adapter: name, versions, aliases, latest metrics."""
        rows = []
        for name in self.names():
            latest = self.resolve(name)
            rows.append(
                {
                    "name": name,
                    "versions": self.versions(name),
                    "aliases": self.aliases(name),
                    "latest": latest.version,
                    "base_fingerprint": latest.base_fingerprint,
                    "metrics": latest.meta.get("metrics", {}),
                }
            )
        return rows

    def show(self, spec: str) -> dict:
        """Everything recorded about one adapter version (meta, config, data card)."""
        ref = self.resolve(spec)
        return {
            "key": ref.key,
            "path": str(ref.path),
            **ref.meta,
            "adapter_config": json.loads((ref.path / CONFIG_FILE).read_text()),
            "data_card": (ref.path / CARD_FILE).read_text() if (ref.path / CARD_FILE).is_file() else "",
        }

    def exemplars(self, ref: AdapterRef) -> list[str]:
        """Example requests stored with an adapter (the router's index entries); empty when none."""
        path = ref.path / EXEMPLARS_FILE
        return list(json.loads(path.read_text())) if path.is_file() else []

    def state(self) -> tuple:
        """A cheap stamp that changes whenever any adapter or alias is added, removed or moved."""
        stamp = []
        for child in sorted(self.root.iterdir()):
            if child.is_dir() and _NAME.match(child.name):
                alias = child / ALIASES_FILE
                stamp.append(
                    (child.name, child.stat().st_mtime_ns, alias.stat().st_mtime_ns if alias.exists() else 0)
                )
        return tuple(stamp)

    # ------------------------------------------------------------------ verified loading
    def load(self, spec: str | AdapterRef, base_fingerprint: str | None) -> tuple[AdapterRef, dict, dict]:
        """Verify and read an adapter: (ref, tensors by peft key, adapter config dict).

        Args:
            spec: a spec or a resolved ref.
            base_fingerprint: the fingerprint of the base it will be loaded onto (``None`` skips that check).

        Raises:
            AdapterIntegrityError: the files do not match the recorded content hash.
            AdapterBaseMismatchError: the adapter was trained on another base.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        ref = spec if isinstance(spec, AdapterRef) else self.resolve(spec)
        for needed in (WEIGHTS_FILE, CONFIG_FILE):
            if not (ref.path / needed).is_file():
                raise AdapterIntegrityError(
                    f"Adapter {ref.key} at {ref.path} lacks {needed}; re-register it."
                )
        actual = content_hash(ref.path)
        if actual != ref.content_hash:
            raise AdapterIntegrityError(
                f"Adapter {ref.key} at {ref.path} failed its integrity check: the files hash to "
                f"{actual[:23]}..., but {ref.content_hash[:23]}... was recorded when it was registered. "
                "The weights or config were "
                "modified or corrupted; remove this version (`dsuite adapters remove`) and register it again."
            )
        if base_fingerprint is not None and ref.base_fingerprint != base_fingerprint:
            raise AdapterBaseMismatchError(
                f"Adapter {ref.key} was trained on base {ref.base_fingerprint or 'unknown'}, but the loaded "
                f"base is {base_fingerprint}. An adapter only works on the exact base it was trained on: "
                "load that base "
                "(--base PATH) or retrain the adapter on this one."
            )
        try:
            tensors = load_file(str(ref.path / WEIGHTS_FILE))
        except (SafetensorError, OSError) as exc:
            raise AdapterIntegrityError(f"Adapter {ref.key}: unreadable safetensors file ({exc}).") from exc
        config = json.loads((ref.path / CONFIG_FILE).read_text())
        return ref, tensors, config

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def _lock(self):
        with (self.root / ".lock").open("a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def register(
        self,
        name: str,
        tensors: dict,
        adapter_config: dict,
        *,
        base_fingerprint: str,
        data_card: str = "",
        training: dict | None = None,
        metrics: dict | None = None,
        parent: str | None = None,
        exemplars: list[str] | None = None,
        aliases: tuple[str, ...] = ("latest",),
    ) -> AdapterRef:
        """Add a new version of ``name`` atomically and point ``aliases`` at it.

        Args:
            name: adapter name.
            tensors: LoRA tensors keyed as peft saves them (``...q_proj.lora_A.weight``).
            adapter_config: the peft ``LoraConfig`` as a JSON-able dict.
            base_fingerprint: the fingerprint of the base the adapter was trained on.
            data_card: markdown describing the training data.
            training: the training settings and statistics.
            metrics: evaluation metrics.
            parent: the ``name@version`` this one was derived from (default: the current latest).
            exemplars: example requests for the router.
            aliases: aliases to move to the new version.

        Returns:
            The new version's ref.
        """
        from safetensors.torch import save_file

        check_name(name)
        if not tensors:
            raise DSuiteError(f"Refusing to register adapter '{name}' without weights.")
        if not base_fingerprint:
            raise DSuiteError(
                f"Refusing to register adapter '{name}' without the fingerprint of its base model."
            )
        for alias in aliases:
            self._check_alias(alias)
        (self.root / name).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root / name))
        try:
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / WEIGHTS_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps(adapter_config, indent=1, sort_keys=True, default=list))
            (tmp / CARD_FILE).write_text(data_card or f"# {name}\n\nNo data card was given.\n")
            if exemplars:
                (tmp / EXEMPLARS_FILE).write_text(json.dumps(list(exemplars), ensure_ascii=False))
            with self._lock():
                current = self.versions(name)
                version = (current[-1] + 1) if current else 1
                if parent is None and current:
                    latest = self.aliases(name).get("latest", current[-1])
                    parent = f"{name}@{latest}"
                meta = {
                    "name": name,
                    "version": version,
                    "content_hash": content_hash(tmp),
                    "base_fingerprint": base_fingerprint,
                    "parent": parent,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "training": training or {},
                    "metrics": metrics or {},
                }
                (tmp / META_FILE).write_text(json.dumps(meta, indent=1, default=str))
                target = self.root / name / f"v{version}"
                tmp.rename(target)
                self._write_aliases(name, {**self.aliases(name), **{a: version for a in aliases}})
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        logger.info("registered adapter %s@%d in %s", name, version, self.root)
        return self._ref(name, version)

    def register_folder(
        self, name: str, folder: str | os.PathLike, *, base_fingerprint: str, **kwargs
    ) -> AdapterRef:
        """Register a peft adapter folder (``adapter_model.safetensors`` + ``adapter_config.json``)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        missing = [f for f in (WEIGHTS_FILE, CONFIG_FILE) if not (folder / f).is_file()]
        if missing:
            raise DSuiteError(
                f"'{folder}' is not a peft adapter folder: missing {', '.join(missing)} (pickled .bin "
                "weights are not accepted; save with safe_serialization=True)."
            )
        config = json.loads((folder / CONFIG_FILE).read_text())
        return self.register(
            name, load_file(str(folder / WEIGHTS_FILE)), config, base_fingerprint=base_fingerprint, **kwargs
        )

    def _check_alias(self, alias: str) -> None:
        if not _ALIAS.match(alias) or alias.isdigit():
            raise DSuiteError(f"Alias {alias!r} is not valid; use a word such as 'latest' or 'stable'.")

    def _write_aliases(self, name: str, aliases: dict[str, int]) -> None:
        path = self.root / name / ALIASES_FILE
        tmp = path.with_name(f".{ALIASES_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(aliases, indent=1, sort_keys=True))
        os.replace(tmp, path)
        os.utime(self.root / name)  # the folder stamp changes too, for `state()`

    def alias(self, name: str, alias: str, version: int | str) -> AdapterRef:
        """Point ``name@alias`` at a version (e.g. ``alias("fpb", "stable", 2)``)."""
        self._check_alias(alias)
        ref = self.resolve(f"{name}@{version}")
        with self._lock():
            self._write_aliases(name, {**self.aliases(name), alias: ref.version})
        return ref

    def rollback(self, name: str, alias: str = "latest") -> AdapterRef:
        """Move ``alias`` back to the version before the one it points at (its parent, else the previous)."""
        current = self.resolve(f"{name}@{alias}")
        versions = self.versions(name)
        parent = current.meta.get("parent")
        target = None
        if parent:
            parent_name, _, parent_version = parent.partition("@")
            if parent_name == name and parent_version.isdigit() and int(parent_version) in versions:
                target = int(parent_version)
        if target is None:
            older = [v for v in versions if v < current.version]
            if not older:
                raise DSuiteError(
                    f"Adapter {current.key} has no earlier version to roll back to (versions: {versions})."
                )
            target = older[-1]
        return self.alias(name, alias, target)

    def remove(self, spec: str) -> list[str]:
        """Remove one version (``name@3``) or every version of an adapter (``name``); returns the keys.

        Aliases that pointed at a removed version move to the newest remaining version (or are dropped).
        """
        name, selector = parse_spec(spec)
        with self._lock():
            if selector is None:
                victims = self.versions(name)
                if not victims:
                    raise AdapterNotFoundError(f"No adapter named '{name}' in registry {self.root}.")
            else:
                victims = [self.resolve(spec).version]
            for version in victims:
                folder = self.root / name / f"v{version}"
                trash = self.root / name / f".removed-v{version}-{os.getpid()}-{time.time_ns()}"
                folder.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
            remaining = self.versions(name)
            if remaining:
                aliases = {a: (v if v in remaining else remaining[-1]) for a, v in self.aliases(name).items()}
                self._write_aliases(name, aliases)
            else:
                shutil.rmtree(self.root / name, ignore_errors=True)
                os.utime(self.root)
        return [f"{name}@{v}" for v in victims]

    def update_metrics(self, ref: AdapterRef, metrics: dict) -> AdapterRef:
        """Merge evaluation metrics into a version's meta (metrics are not part of the content hash)."""
        path = ref.path / META_FILE
        with self._lock():
            meta = json.loads(path.read_text())
            meta["metrics"] = {**meta.get("metrics", {}), **metrics}
            tmp = path.with_name(f".{META_FILE}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(meta, indent=1, default=str))
            os.replace(tmp, path)
        return self._ref(ref.name, ref.version)
