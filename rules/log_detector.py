"""Detectors of log windows by name: learned log rule sets and the classical baselines.

Every detector is fitted on the training part of a split and then flags the windows of any
part (:class:`LogPrediction`: 0/1 and a score per window). Names follow the benchmark
runner's grammar: ``pca``, ``iforest``, ``invariants``, ``keyword``, and ``rules:PATH`` for
a log rule set folder (or one rule ``.py`` file). A rule set runs in one long-lived sandbox
process (its rules share it); its decision is the OR of its rules, its score the share of rules that fire, and
with ``combine_with`` in its manifest the decision is AND-ed or OR-ed with that detector's
(fitted on the same training part). A rule that fails at run time flags nothing; the error
is kept in ``info["rule_errors"]`` and counted in ``info["failed_rules"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from anomamind.rules.log_data import LogPart
from anomamind.rules.rule import RuleSet, load_rule_set
from anomamind.rules.sandbox import RuleRejected, SandboxLimits, SandboxWorker, vet_source
from anomamind.rules.scoring import combine
from anomamind.types import DataError


_WARM_UP = "def detect(lines):\n    # starts the sandbox process; flags nothing\n    return False\n"


@dataclass
class LogPrediction:
    flags: np.ndarray  # 0/1 per window
    scores: np.ndarray  # higher = more anomalous
    info: dict[str, Any] = field(default_factory=dict)


class LogDetector(Protocol):
    name: str

    def fit(self, train: LogPart) -> None: ...

    def detect(self, part: LogPart) -> LogPrediction: ...

    def close(self) -> None: ...


class CountMatrixDetector:
    """A count-matrix baseline (PCA, Isolation Forest, Invariants Mining) on a part's windows."""

    uses_templates = True

    def __init__(self, name: str, model: Any):
        self.name = name
        self.model = model

    def fit(self, train: LogPart) -> None:
        self.model.fit(train.counts())

    def detect(self, part: LogPart) -> LogPrediction:
        flags, scores = self.model.predict(part.counts())
        return LogPrediction(flags.astype(np.int8), np.asarray(scores, dtype=np.float64))

    def close(self) -> None:
        pass


class KeywordLogDetector:
    """The keyword rule on the raw lines of each window (nothing to fit)."""

    uses_templates = False

    def __init__(self, name: str = "keyword"):
        from anomamind.eval.baselines.logs import KeywordDetector

        self.name = name
        self.model = KeywordDetector()

    def fit(self, train: LogPart) -> None:
        pass

    def detect(self, part: LogPart) -> LogPrediction:
        flags, scores = self.model.predict_lines(part.texts())
        return LogPrediction(flags, scores)

    def close(self) -> None:
        pass


class LogRuleSetDetector:
    """A log :class:`~anomamind.rules.rule.RuleSet` run in the sandbox (see the module docstring)."""

    uses_templates = False

    def __init__(self, rule_set: RuleSet, limits: SandboxLimits | None = None, name: str = "rules"):
        if rule_set.modality != "logs":
            raise DataError(f"{name}: holds {rule_set.modality} rules, not log rules")
        for rule in rule_set.rules:  # refuse code that fails the static check before running it
            try:
                vet_source(rule.source, modality="logs")
            except RuleRejected as err:
                raise RuleRejected(err.kind, f"rule {rule.name!r}: {err.reason}") from err
        self.rule_set = rule_set
        self.name = name
        self.worker = SandboxWorker(limits)
        self.base = create_log_detector(rule_set.combine_with["detector"]) if rule_set.combine_with else None

    def fit(self, train: LogPart) -> None:
        """Fit the base detector, if any, and start the sandbox (so detection times exclude it)."""
        if self.base is not None:
            self.base.fit(train)
        self.worker.run_lines(_WARM_UP, [[]], name="warm-up", shared_process="rule set")

    def rule_flags(self, windows: list[list[str]]) -> tuple[np.ndarray, list[str]]:
        """(rules x windows) 0/1 matrix, and the errors of rules that failed."""
        matrix = np.zeros((len(self.rule_set.rules), len(windows)), dtype=np.int8)
        errors = []
        for i, rule in enumerate(self.rule_set.rules):
            try:
                matrix[i] = self.worker.run_lines(rule.source, windows, name=rule.name, shared_process="rule set")
            except RuleRejected as err:
                errors.append(f"{rule.name}: {err}")
        return matrix, errors

    def detect(self, part: LogPart) -> LogPrediction:
        matrix, errors = self.rule_flags(part.texts())
        flags = matrix.any(axis=0)
        scores = matrix.mean(axis=0)
        info: dict[str, Any] = {"rules": len(self.rule_set.rules)}
        if errors:
            info["rule_errors"] = errors
            info["failed_rules"] = len(errors)
        if self.base is not None:
            base = self.base.detect(part).flags.astype(bool)
            flags = combine(base, flags, self.rule_set.combine_with["mode"])
            scores = flags.astype(np.float64)
            info["combined_with"] = dict(self.rule_set.combine_with)
        return LogPrediction(flags.astype(np.int8), scores.astype(np.float64), info)

    def close(self) -> None:
        self.worker.close()
        if self.base is not None:
            self.base.close()


def _pca(**options: Any) -> LogDetector:
    from anomamind.eval.baselines.logs import PCADetector

    return CountMatrixDetector("pca", PCADetector(**options))


def _iforest(**options: Any) -> LogDetector:
    from anomamind.eval.baselines.logs import IsolationForestDetector

    return CountMatrixDetector("iforest", IsolationForestDetector(**options))


def _invariants(**options: Any) -> LogDetector:
    from anomamind.eval.baselines.logs import InvariantsMiningDetector

    return CountMatrixDetector("invariants", InvariantsMiningDetector(**options))


def _keyword(**options: Any) -> LogDetector:
    if options:
        raise ValueError(f"detector 'keyword' takes no options, got {sorted(options)}")
    return KeywordLogDetector()


def make_log_rule_detector(path: str | Path, **options: Any) -> LogRuleSetDetector:
    """``rules:PATH``: a log rule set folder, or a single rule ``.py`` file. Options:
    ``time_limit_s``, ``memory_limit_mb``, ``seconds_per_million_points`` (sandbox limits),
    ``trusted_rules`` (run the rules even where the OS sandbox is unavailable)."""
    limits = SandboxLimits(
        time_limit_s=float(options.pop("time_limit_s", 5.0)),
        memory_limit_mb=int(options.pop("memory_limit_mb", 512)),
        seconds_per_million_points=float(options.pop("seconds_per_million_points", 120.0)),
        trusted_rules=bool(options.pop("trusted_rules", False)),
    )
    if options:
        raise ValueError(f"rules:{path}: unknown option(s) {sorted(options)}")
    rule_set = load_rule_set(path, modality="logs")
    return LogRuleSetDetector(rule_set, limits=limits, name=f"rules:{path}")


#: name -> factory; a name ending in ":" takes an argument (``rules:PATH``).
LOG_DETECTORS: dict[str, Callable[..., LogDetector]] = {
    "pca": _pca,
    "iforest": _iforest,
    "invariants": _invariants,
    "keyword": _keyword,
    "rules:": make_log_rule_detector,
}


def available_log_detectors() -> list[str]:
    return [name + "PATH" if name.endswith(":") else name for name in LOG_DETECTORS]


def create_log_detector(spec: str, **options: Any) -> LogDetector:
    """Build the log detector named ``spec`` (``pca``, ``rules:runs/logs/BGL`` ...)."""
    if spec in LOG_DETECTORS and not spec.endswith(":"):
        return LOG_DETECTORS[spec](**options)
    prefix, _, argument = spec.partition(":")
    if prefix + ":" in LOG_DETECTORS and argument:
        return LOG_DETECTORS[prefix + ":"](argument, **options)
    raise DataError(f"unknown log detector {spec!r}; registered: {', '.join(available_log_detectors())}")
