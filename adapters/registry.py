"""A versioned folder of LoRA adapters: ``name@version`` with aliases, content hashes and base fingerprints.

Layout under the root (see :func:`registry_root`: ``$DSUITE_REGISTRY``, its older name ``$DSUITE_ADAPTERS``,
else ``$DSUITE_HOME/adapters``)::

    <name>/aliases.json              {"latest": 3, "stable": 2}
    <name>/issued.json               {"highest_version": 4}: versions are never reused, even after removal
    <name>/v<N>/adapter_model.safetensors   LoRA weights in peft's key format
    <name>/v<N>/adapter_config.json         peft LoraConfig as JSON
    <name>/v<N>/meta.json                   content hash, base fingerprint, training settings, metrics, parent
    <name>/v<N>/DATA_CARD.md                the training data card
    <name>/v<N>/exemplars.json              (optional) example requests, for the router

Every write goes to a temporary folder that is renamed into place; alias and version-counter files are
replaced atomically under a file lock, so several processes can share one registry. Version folders get the
process umask's usual permissions (not ``mkdtemp``'s 0700), so processes of several users can share it.
Nothing is ever unpickled: weights are safetensors, everything else is JSON. Every lookup reads the folder
again, so a running process sees adapters registered by another process on its next request.
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
ISSUED_FILE = "issued.json"
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


def _umask() -> int:
    """The process umask, read without changing it where Linux reports it (``os.umask`` sets it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shared_mkdtemp(prefix: str, dir: Path) -> Path:
    """``tempfile.mkdtemp``, but with the permissions ``mkdir`` would give (``0o777 & ~umask``), not 0700.

    The folder is renamed into place as a registry version or a checkpoint, which processes of other users
    sharing the registry must be able to read.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
    os.chmod(path, 0o777 & ~_umask())
    return path


class RemovedVersions(list):
    """What :meth:`Registry.remove` did: a list of the removed ``name@version`` keys, plus ``aliases``.

    ``aliases`` maps each alias the removal moved to ``(old version, new version)``; the new version is
    ``None`` when the alias was dropped because no version is left.
    """

    def __init__(self, keys: list[str], aliases: dict[str, tuple[int, int | None]]) -> None:
        super().__init__(keys)
        self.aliases = aliases


def read_peft_folder(folder: str | os.PathLike) -> tuple[dict, dict]:
    """(tensors, adapter config) of a peft adapter folder, refusing what is missing or unreadable.

    Raises:
        DSuiteError: the folder does not exist, lacks the safetensors weights or the config, or a file is not
            valid (JSON that does not parse, not an object, an unreadable safetensors file).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    wanted = f"the folder a peft adapter was saved to (with {WEIGHTS_FILE} and {CONFIG_FILE})"
    if not folder.exists():
        raise DSuiteError(f"Adapter folder '{folder}' not found; give {wanted}.")
    if not folder.is_dir():
        raise DSuiteError(f"'{folder}' is a file, not a folder; give {wanted}.")
    missing = [f for f in (WEIGHTS_FILE, CONFIG_FILE) if not (folder / f).is_file()]
    if missing:
        raise DSuiteError(
            f"'{folder}' is not a peft adapter folder: missing {', '.join(missing)} (pickled .bin "
            "weights are not accepted; save with safe_serialization=True)."
        )
    path = folder / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DSuiteError(
            f"'{path}' is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); fix it or "
            "save the adapter again with peft's save_pretrained."
        ) from exc
    except UnicodeDecodeError as exc:
        raise DSuiteError(f"'{path}' is not UTF-8 text ({exc.reason}); save the adapter again.") from exc
    except OSError as exc:
        raise DSuiteError(f"Cannot read '{path}': {exc}.") from exc
    if not isinstance(config, dict):
        raise DSuiteError(
            f"'{path}' holds a JSON {type(config).__name__}, not an object; it must be a peft LoraConfig "
            "(save the adapter again with peft's save_pretrained)."
        )
    try:
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, OSError) as exc:
        raise DSuiteError(
            f"'{folder / WEIGHTS_FILE}' is not a readable safetensors file ({exc}); save the adapter again."
        ) from exc
    return tensors, config


def base_linear_shapes(base_folder: str | os.PathLike) -> tuple[dict[str, tuple[int, int]], str]:
    """``(out_features, in_features)`` of every Linear module of a base checkpoint, and its class name.

    Read from the folder's ``config.json`` alone: the model is built on the ``meta`` device (no weights are
    loaded or allocated), so this takes about a second even for a large base.

    Raises:
        DSuiteError: the config cannot be read or names an architecture that cannot be built.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    import core_model.model  # noqa: F401  (registers the suite's architecture with the Auto classes)

    try:
        config = AutoConfig.from_pretrained(base_folder)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DSuiteError(
            f"Cannot read the architecture of the base at '{base_folder}' from its config.json ({exc}); "
            "give a base checkpoint folder (--base PATH)."
        ) from exc
    from adapters.multi_lora import linear_shapes

    return linear_shapes(model.named_modules()), type(model).__name__


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``name``, ``name@3``, ``name@v3`` or ``name@alias`` into (name, selector or None)."""
    if not isinstance(spec, str) or not spec.strip():
        raise DSuiteError(f"Adapter spec {spec!r} is empty; expected 'name', 'name@version' or 'name@alias'.")
    name, _, selector = spec.strip().partition("@")
    check_name(name)
    return name, (selector or None)


def undo_hint(before: AdapterRef, alias: str = "latest") -> str:
    """How to point ``alias`` back at ``before`` after a rollback moved it (shown to whoever rolled back)."""
    return f"undo: dsuite adapters alias {before.name} {alias} {before.version}"


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
        tmp = shared_mkdtemp(".incoming-", self.root / name)
        try:
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / WEIGHTS_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps(adapter_config, indent=1, sort_keys=True, default=list))
            (tmp / CARD_FILE).write_text(data_card or f"# {name}\n\nNo data card was given.\n")
            if exemplars:
                (tmp / EXEMPLARS_FILE).write_text(json.dumps(list(exemplars), ensure_ascii=False))
            with self._lock():
                current = self.versions(name)
                version = self._highest_issued(name) + 1
                self._write_issued(name, version)  # first: a crash burns a number, never reuses one
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
        self,
        name: str,
        folder: str | os.PathLike,
        *,
        base_fingerprint: str,
        check_base: str | os.PathLike | None = None,
        **kwargs,
    ) -> AdapterRef:
        """Register a peft adapter folder (``adapter_model.safetensors`` + ``adapter_config.json``).

        Args:
            name: adapter name.
            folder: the peft adapter folder.
            base_fingerprint: the fingerprint of the base the adapter was trained on.
            check_base: a base checkpoint folder; when given, the adapter must be a servable LoRA whose
                modules and shapes fit that base's Linear modules (read from its config.json), else it is
                refused before anything is written (instead of failing when it is first served).
            **kwargs: as for :meth:`register`.

        Raises:
            DSuiteError: see :func:`read_peft_folder`; with ``check_base``, an adapter that does not fit.
        """
        folder = Path(folder)
        tensors, config = read_peft_folder(folder)
        if check_base is not None:
            from adapters.multi_lora import check_lora_fits

            shapes, architecture = base_linear_shapes(check_base)
            try:
                check_lora_fits(f"'{folder}'", tensors, config, shapes, architecture)
            except DSuiteError as exc:
                raise DSuiteError(
                    f"Refusing to register {name!r}: {exc} The adapter must be trained on the base it is "
                    f"registered for ({check_base}); pass that base with --base PATH."
                ) from exc
        return self.register(name, tensors, config, base_fingerprint=base_fingerprint, **kwargs)

    def _check_alias(self, alias: str) -> None:
        if not _ALIAS.match(alias) or alias.isdigit():
            raise DSuiteError(f"Alias {alias!r} is not valid; use a word such as 'latest' or 'stable'.")

    def _write_aliases(self, name: str, aliases: dict[str, int]) -> None:
        path = self.root / name / ALIASES_FILE
        tmp = path.with_name(f".{ALIASES_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(aliases, indent=1, sort_keys=True))
        os.replace(tmp, path)
        os.utime(self.root / name)  # the folder stamp changes too, for `state()`

    def _highest_issued(self, name: str) -> int:
        """The highest version ever issued for ``name`` (0 when none): never lower than a folder present."""
        folder = self.root / name
        present = [
            int(child.name[1:])
            for child in (folder.iterdir() if folder.is_dir() else ())
            if child.name.startswith("v") and child.name[1:].isdigit()
        ]
        path = folder / ISSUED_FILE
        recorded = 0
        if path.is_file():
            try:
                recorded = int(json.loads(path.read_text())["highest_version"])
            except (json.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
                raise DSuiteError(
                    f"Version counter {path} is corrupt ({exc}); write the highest version ever registered "
                    'for this adapter into it as {"highest_version": N} (so no version number is reused).'
                ) from exc
        return max([recorded, *present])

    def _write_issued(self, name: str, version: int) -> None:
        """Record ``version`` as the highest issued for ``name`` (atomically; call under the lock)."""
        path = self.root / name / ISSUED_FILE
        tmp = path.with_name(f".{ISSUED_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"highest_version": version}))
        os.replace(tmp, path)

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

    def remove(self, spec: str) -> RemovedVersions:
        """Remove one version (``name@3``) or every version of an adapter (``name``).

        Version numbers are never reused: the highest one issued stays recorded (``issued.json``, kept even
        when no version is left), so the next registration of ``name`` gets a new number and a report that
        names ``name@3`` can never point at other weights. Aliases that pointed at a removed version move to
        the newest remaining version, or are dropped when none is left; the result says which.

        Returns:
            The removed keys (a list), with ``.aliases``: alias -> (old version, new version or None).
        """
        name, selector = parse_spec(spec)
        with self._lock():
            if selector is None:
                victims = self.versions(name)
                if not victims:
                    raise AdapterNotFoundError(f"No adapter named '{name}' in registry {self.root}.")
            else:
                victims = [self.resolve(spec).version]
            self._write_issued(name, self._highest_issued(name))  # registries older than the counter file
            before = self.aliases(name)
            for version in victims:
                folder = self.root / name / f"v{version}"
                trash = self.root / name / f".removed-v{version}-{os.getpid()}-{time.time_ns()}"
                folder.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
            remaining = self.versions(name)
            after: dict[str, int] = {}
            if remaining:
                after = {a: (v if v in remaining else remaining[-1]) for a, v in before.items()}
                self._write_aliases(name, after)
            else:
                (self.root / name / ALIASES_FILE).unlink(missing_ok=True)
                os.utime(self.root / name)
                os.utime(self.root)
        moved = {a: (v, after.get(a)) for a, v in before.items() if after.get(a) != v}
        for alias_name, (old, new) in sorted(moved.items()):
            logger.warning(
                "removing %s: alias %s@%s %s",
                spec,
                name,
                alias_name,
                f"moved from version {old} to {new}" if new is not None else f"(was {old}) dropped",
            )
        return RemovedVersions([f"{name}@{v}" for v in victims], moved)

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
