"""Continual learning: add domains one at a time without forgetting the others.

``add_domain`` trains a new adapter (the others stay frozen), evaluates it, re-runs every registered domain's
evaluation (forgetting check), checks the router with the new domain in it, and only if every gate passes
moves the adapter's ``latest``/``stable`` aliases and saves the router; a refused adapter is removed again.
``infer(text, domain=None)`` routes when no domain is given. ``report()`` gives the accuracy matrix, average
accuracy, backward transfer (BWT), routed vs told accuracy, router accuracy and abstention rate.

State (the domains, their tasks, the accuracy matrix and the router) lives in ``<registry>/.continual/``,
so another process that adds a domain is seen by a running learner on its next ``infer``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from adapters.config import LoraTrainConfig
from adapters.data import write_jsonl
from adapters.manager import AdapterManager
from adapters.registry import Registry
from adapters.router import Router
from adapters.tasks import LabelTask, accuracy, predict, read_rows
from adapters.train import train_adapter
from core_model.base import Base
from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)
STATE_FILE = "state.json"


@dataclass(frozen=True)
class Gates:
    """Thresholds a new domain must pass to be registered and routed.

    Attributes:
        min_accuracy: the new adapter's held-out accuracy at least this.
        min_gain: and at least this much above the bare base on the same rows.
        max_forgetting: no registered domain may lose more than this (told-the-domain accuracy).
        min_router_accuracy: with the new domain, the router routes at least this share of held-out
            queries right.
    """

    min_accuracy: float = 0.5
    min_gain: float = 0.05
    max_forgetting: float = 0.0
    min_router_accuracy: float = 0.9


class ContinualLearner:
    """Adds classification domains to a registry one at a time, with gates, routing and a report."""

    def __init__(
        self,
        base: Base,
        registry: Registry | None = None,
        *,
        config: LoraTrainConfig | None = None,
        gates: Gates | None = None,
        state_dir: str | os.PathLike | None = None,
        progress: bool = True,
        max_eval: int | None = None,
        ood_calibration: list[str] | None = None,
        ood_test: list[str] | None = None,
    ) -> None:
        """Open (or start) a continual-learning run.

        Args:
            base: the loaded base.
            registry: where adapters go (default ``Registry()``).
            config: LoRA settings for every domain (default preset ``quick``).
            gates: acceptance thresholds.
            state_dir: where the run's state and router live (default ``<registry>/.continual``).
            progress: progress bars.
            max_eval: evaluate at most this many test rows per domain (default: all).
            ood_calibration: out-of-domain queries the abstention threshold is calibrated on (the router
                should abstain on them); without them the threshold keeps 99% of correct in-domain routes.
            ood_test: held-out out-of-domain queries for the report's abstention figures.
        """
        self.base = base
        self.registry = registry if registry is not None else Registry()
        self.config = config or LoraTrainConfig.preset("quick")
        self.gates = gates or Gates()
        self.state_dir = Path(state_dir) if state_dir else self.registry.root / ".continual"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.max_eval = max_eval
        self.ood_calibration = list(ood_calibration or [])
        self.ood_test = list(ood_test or [])
        self.manager = AdapterManager(base, self.registry)
        self._stamp: int | None | bool = False  # never loaded
        self.state: dict = {}
        self.router = Router()
        self._reload()

    # ------------------------------------------------------------------ state
    def _reload(self) -> None:
        path = self.state_dir / STATE_FILE
        stamp = path.stat().st_mtime_ns if path.exists() else None
        if stamp == self._stamp:
            return
        self.state = (
            json.loads(path.read_text()) if path.exists() else {"domains": {}, "order": [], "matrix": []}
        )
        router_dir = self.state_dir / "router"
        self.router = Router.load(router_dir) if (router_dir / "router.json").exists() else Router()
        self._stamp = stamp

    def _save(self) -> None:
        tmp = self.state_dir / f".{STATE_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.state_dir / STATE_FILE)
        self._stamp = (self.state_dir / STATE_FILE).stat().st_mtime_ns

    def task(self, name: str) -> LabelTask:
        """The task of a registered domain (rows of its held-out test split included)."""
        self._reload()
        entry = self.state["domains"].get(name)
        if entry is None:
            raise DSuiteError(f"No domain '{name}' in this continual run; domains: {self.state['order']}.")
        return LabelTask(name, entry["instruction"], tuple(entry["labels"]), (), tuple(entry["test"]))

    def _rows(self, rows):
        return list(rows)[: self.max_eval] if self.max_eval else list(rows)

    # ------------------------------------------------------------------ adding
    def add_domain(
        self,
        name: str,
        data: str | os.PathLike | LabelTask,
        *,
        instruction: str | None = None,
        labels: list[str] | None = None,
        test: str | os.PathLike | None = None,
    ) -> dict:
        """Train, evaluate and (if every gate passes) register and route a new domain.

        Args:
            name: the domain (and adapter) name.
            data: a :class:`LabelTask`, or a JSONL of ``{"text", "label"}`` training rows.
            instruction: prompt template with ``{text}`` (needed when ``data`` is a file).
            labels: the label set (default: the labels found in ``data``).
            test: JSONL of held-out rows (default: 20% of ``data`` is held out).

        Returns:
            This step's record: accuracies, gate results, ``accepted``.
        """
        self._reload()
        if name in self.state["domains"]:
            raise DSuiteError(f"Domain '{name}' is already in this run; pick another name.")
        task = (
            data
            if isinstance(data, LabelTask)
            else self._task_from_files(name, data, instruction, labels, test)
        )
        started = time.perf_counter()
        # router calibration rows come from the training data (the test rows stay unseen until evaluation)
        train_rows = list(task.train)
        random.Random(0).shuffle(train_rows)
        n_cal = max(2, len(train_rows) // 10)
        cal_rows, fit_rows = train_rows[:n_cal], train_rows[n_cal:]
        with tempfile.TemporaryDirectory() as tmp:
            path = write_jsonl(Path(tmp) / f"{name}.jsonl", task.records(fit_rows))
            ref = train_adapter(
                name,
                path,
                base=self.base,
                registry=self.registry,
                config=self.config,
                progress=self.progress,
                aliases=(),
                exemplars=[r["text"] for r in fit_rows],
                data_card=f"# {name}\n\nContinual-learning domain; {len(fit_rows)} training rows "
                f"(instruction: {task.instruction!r}; labels {list(task.labels)}).\n",
            )
        test_rows = self._rows(task.test)
        new_acc = accuracy(self.manager, task, ref.key, test_rows, progress=self.progress)
        base_acc = accuracy(self.manager, task, None, test_rows, progress=self.progress)
        old = {}
        for other in self.state["order"]:
            other_task = self.task(other)
            old[other] = accuracy(
                self.manager,
                other_task,
                self.state["domains"][other]["adapter"],
                self._rows(other_task.test),
                progress=self.progress,
            )
        router = self._router_with(name, fit_rows, cal_rows)
        router_acc = self._router_accuracy(
            router, {**{o: self.task(o) for o in self.state["order"]}, name: task}
        )
        last = self.state["matrix"][-1] if self.state["matrix"] else {}
        forgetting = {o: round(last.get(o, a) - a, 4) for o, a in old.items()}
        gates = {
            "min_accuracy": new_acc >= self.gates.min_accuracy,
            "min_gain": new_acc - base_acc >= self.gates.min_gain,
            "max_forgetting": all(f <= self.gates.max_forgetting for f in forgetting.values()),
            "min_router_accuracy": router_acc >= self.gates.min_router_accuracy,
        }
        accepted = all(gates.values())
        step = {
            "domain": name,
            "adapter": ref.key,
            "accuracy": new_acc,
            "base_accuracy": base_acc,
            "old_accuracy": old,
            "forgetting": forgetting,
            "router_accuracy": router_acc,
            "router_threshold": router.threshold,
            "gates": gates,
            "gate_settings": asdict(self.gates),
            "accepted": accepted,
            "seconds": round(time.perf_counter() - started, 1),
            "train_seconds": ref.meta["training"]["seconds"],
            "trainable_share": ref.meta["training"]["trainable_share"],
        }
        if accepted:
            self.registry.update_metrics(ref, {"accuracy": new_acc, "base_accuracy": base_acc})
            self.registry.alias(name, "latest", ref.version)
            self.registry.alias(name, "stable", ref.version)
            self.state["domains"][name] = {
                **task.spec(),
                "adapter": ref.key,
                "test": list(task.test),
                "base_accuracy": base_acc,
                "calibration": [r["text"] for r in cal_rows],
            }
            self.state["order"].append(name)
            self.state["matrix"].append({**old, name: new_acc})
            self.state.setdefault("steps", []).append(step)
            router.save(self.state_dir / "router")
            self.router = router
            self._save()
            logger.info(
                "domain %s accepted: accuracy %.3f (base %.3f), router %.3f",
                name,
                new_acc,
                base_acc,
                router_acc,
            )
        else:
            self.registry.remove(ref.key)
            failed = [g for g, ok in gates.items() if not ok]
            logger.warning("domain %s refused (gates failed: %s); adapter %s removed", name, failed, ref.key)
        return step

    def _task_from_files(self, name, data, instruction, labels, test) -> LabelTask:
        if instruction is None:
            raise DSuiteError(
                "add_domain(name, FILE) needs instruction='... {text} ...' (the prompt template)."
            )
        rows = read_rows(data)
        if test is None:
            random.Random(0).shuffle(rows)
            cut = max(1, len(rows) // 5)
            test_rows, rows = rows[:cut], rows[cut:]
        else:
            test_rows = read_rows(test)
        labels = tuple(labels or sorted({r["label"] for r in rows}))
        return LabelTask(name, instruction, labels, tuple(rows), tuple(test_rows))

    def _router_with(self, name: str, fit_rows: list[dict], cal_rows: list[dict]) -> Router:
        router = self.router.copy()  # the existing vectors are copied, not embedded again
        router.add(name, [r["text"] for r in fit_rows])
        cal_texts, cal_labels = [r["text"] for r in cal_rows], [name] * len(cal_rows)
        for other in self.state["order"]:
            entry = self.state["domains"][other]
            cal_texts += entry.get("calibration", [])
            cal_labels += [other] * len(entry.get("calibration", []))
        cal_texts += self.ood_calibration
        cal_labels += [None] * len(self.ood_calibration)
        # an in-domain query sent to the bare base loses the adapter; an off-topic one sent to an adapter
        # is answered by the same base plus a small LoRA: keep 99% of the in-domain calibration queries
        router.calibrate(cal_texts, cal_labels, min_coverage=0.99, objective="coverage")
        return router

    def _router_accuracy(self, router: Router, tasks: dict[str, LabelTask]) -> float:
        texts, gold = [], []
        for name, task in tasks.items():
            rows = self._rows(task.test)
            texts += [r["text"] for r in rows]
            gold += [name] * len(rows)
        routes = router.route_batch(texts)
        return sum(r.adapter == g for r, g in zip(routes, gold, strict=True)) / len(gold)

    # ------------------------------------------------------------------ serving
    def infer(self, text: str, domain: str | None = None) -> dict:
        """Classify ``text`` with its domain's adapter; routed when ``domain`` is not given.

        Returns:
            ``{"label", "domain", "adapter", "routed", "confidence", "runners_up"}``; when the router
            abstains, the bare base answers with the best-guess domain's labels and ``adapter`` is ``None``.
        """
        self._reload()
        if not self.state["order"]:
            raise DSuiteError("No domain registered yet; call add_domain first.")
        route = None
        if domain is None:
            route = self.router.route(text)
            domain = route.adapter or route.best
            adapter = self.state["domains"][domain]["adapter"] if route.adapter else None
        else:
            self.task(domain)  # validates the name
            adapter = self.state["domains"][domain]["adapter"]
        task = self.task(domain)
        label = predict(self.manager, task, adapter, [text])[0]
        return {
            "label": label,
            "domain": domain,
            "adapter": adapter,
            "routed": route is not None,
            "confidence": route.confidence if route else None,
            "runners_up": route.runners_up if route else [],
        }

    def report(self) -> dict:
        """Accuracy matrix, average accuracy, BWT, routed vs told accuracy, router accuracy and abstention."""
        self._reload()
        order = self.state["order"]
        if not order:
            raise DSuiteError("No domain registered yet; nothing to report.")
        matrix = self.state["matrix"]
        final = dict(matrix[-1])  # told-the-domain accuracy of every domain after the last addition
        diag = {name: matrix[i][name] for i, name in enumerate(order)}
        bwt = (sum(final[n] - diag[n] for n in order[:-1]) / (len(order) - 1)) if len(order) > 1 else 0.0
        routed, router_hits, abstained, total = {}, 0, 0, 0
        for name in order:
            task = self.task(name)
            rows = self._rows(task.test)
            routes = self.router.route_batch([r["text"] for r in rows])
            groups: dict[tuple, list[int]] = {}  # (target domain, adapter or None) -> row indices
            for i, route in enumerate(routes):
                target = route.adapter or route.best
                adapter = self.state["domains"][target]["adapter"] if route.adapter else None
                groups.setdefault((target, adapter), []).append(i)
                router_hits += route.adapter == name
                abstained += route.adapter is None
            correct = 0
            for (target, adapter), indices in groups.items():
                labels = predict(self.manager, self.task(target), adapter, [rows[i]["text"] for i in indices])
                correct += sum(
                    lab == rows[i]["label"] and target == name for lab, i in zip(labels, indices, strict=True)
                )
            total += len(rows)
            routed[name] = correct / len(rows)
        told_mean = sum(final.values()) / len(order)
        routed_mean = sum(routed.values()) / len(order)
        return {
            "domains": order,
            "matrix": [[row.get(n) for n in order] for row in matrix],
            "base_accuracy": {n: self.state["domains"][n]["base_accuracy"] for n in order},
            "told_accuracy": final,
            "average_accuracy": told_mean,
            "bwt": bwt,
            "routed_accuracy": routed,
            "routed_average": routed_mean,
            "routed_over_told": routed_mean / told_mean if told_mean else 0.0,
            "router_accuracy": router_hits / total,
            "abstention_rate": abstained / total,
            "ood_abstention_rate": (
                sum(r.adapter is None for r in self.router.route_batch(self.ood_test)) / len(self.ood_test)
                if self.ood_test
                else None
            ),
            "router_threshold": self.router.threshold,
            "steps": self.state.get("steps", []),
        }
