"""Rule sets as detectors of the benchmark runner: ``--detector rules:PATH``.

The rules run in a sandbox (:class:`~anomamind.rules.sandbox.SandboxWorker`: one long-lived,
OS-confined process for the rule set) over all windows of a series at once (``detect_many``: of several series at once). A rule set's decision is the OR of its rules; its
score per point is the fraction of its rules that flag the point (for threshold-free
metrics). With ``combine_with`` in the manifest the decision is AND-ed or OR-ed with that
detector's own decision, and the score is that combined 0/1 decision. A rule that fails at run time on a series flags nothing there; the
error is kept in ``info["rule_errors"]`` and in the prediction's ``errors`` (so the
benchmark records the pair as failed and computes it again next time), and every window of
that series is counted in ``failed_windows`` (the failure is never dropped silently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anomamind.eval.registry import SeriesPrediction, create_detector
from anomamind.rules.rule import RuleSet, load_rule_set, rule_windows
from anomamind.rules.sandbox import RuleRejected, SandboxLimits, SandboxWorker, vet_source
from anomamind.rules.scoring import combine
from anomamind.types import DataError, Series


class RuleSetDetector:
    """Runs a :class:`~anomamind.rules.rule.RuleSet` over whole series."""

    def __init__(self, rule_set: RuleSet, limits: SandboxLimits | None = None, name: str = ""):
        if rule_set.modality != "series":
            raise DataError(f"rule set {name or rule_set.dataset!r} holds {rule_set.modality} rules; "
                            "benchmark it with 'anomamind logs bench'")
        for rule in rule_set.rules:  # refuse code that fails the static check before running it
            try:
                vet_source(rule.source)
            except RuleRejected as err:
                raise RuleRejected(err.kind, f"rule {rule.name!r}: {err.reason}") from err
        self.rule_set = rule_set
        self.name = name
        self.worker = SandboxWorker(limits)
        self.base = None
        if rule_set.combine_with:
            self.base = create_detector(rule_set.combine_with["detector"])

    def rule_flags(self, series: list[Series]) -> tuple[np.ndarray, list[list[str]]]:
        """(rules x points) 0/1 matrix over the concatenated ``series``, and each series'
        rule errors. One sandbox call per rule covers the windows of all the series."""
        lengths = [len(s) for s in series]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
        values = np.concatenate([s.values for s in series])
        bounds = [(int(o + a), int(o + b)) for o, n in zip(offsets, lengths)
                  for a, b in rule_windows(n, self.rule_set.window_length)]
        matrix = np.zeros((len(self.rule_set.rules), values.size), dtype=np.int8)
        errors: list[list[str]] = [[] for _ in series]
        for i, rule in enumerate(self.rule_set.rules):
            try:
                matrix[i] = self.worker.run(rule.source, values, bounds, name=rule.name, shared_process="rule set")
            except RuleRejected as err:
                if len(series) == 1:
                    errors[0].append(f"{rule.name}: {err}")
                    continue
                for k, s in enumerate(series):  # find which series fail (the others keep their flags)
                    try:
                        matrix[i, offsets[k]:offsets[k + 1]] = self.worker.run(
                            rule.source, s.values, rule_windows(len(s), self.rule_set.window_length),
                            name=rule.name, shared_process="rule set")
                    except RuleRejected as single:
                        errors[k].append(f"{rule.name}: {single}")
        return matrix, errors

    def detect_many(self, series: list[Series]) -> list[SeriesPrediction]:
        """Predictions for several series at once (fewer sandbox round trips than ``detect``)."""
        matrix, errors = self.rule_flags(series)
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in series])]).astype(int)
        return [self._prediction(s, matrix[:, offsets[k]:offsets[k + 1]], errors[k]) for k, s in enumerate(series)]

    def detect(self, series: Series) -> SeriesPrediction:
        return self.detect_many([series])[0]

    def _prediction(self, series: Series, matrix: np.ndarray, errors: list[str]) -> SeriesPrediction:
        pred = matrix.any(axis=0)
        scores = matrix.mean(axis=0)
        k = len(self.rule_set.rules)
        # Best-F1 candidates: "at least j of the k rules fire" (j/k), never picked here
        info: dict[str, Any] = {"threshold_candidates": [j / k for j in range(1, k + 1)]}
        if errors:
            info["rule_errors"] = errors
        if self.base is not None:
            base_pred = np.asarray(self.base.detect(series).pred, dtype=bool)
            pred = combine(base_pred, pred, self.rule_set.combine_with["mode"])
            scores = pred.astype(np.float64)  # the combined decision is the only score
            info["threshold_candidates"] = [1.0]
            info["combined_with"] = dict(self.rule_set.combine_with)
        n_windows = len(rule_windows(len(series), self.rule_set.window_length))
        return SeriesPrediction(
            pred=pred.astype(np.int8),
            scores=scores.astype(np.float64),
            intervals=None,
            failed_windows=n_windows if errors else 0,
            info=info,
            errors=list(errors),
        )

    def close(self) -> None:
        self.worker.close()


def make_rule_detector(path: str | Path, **options: Any) -> RuleSetDetector:
    """Registry factory for ``rules:PATH`` (a rule set folder or one rule ``.py`` file).

    Options: ``window_length`` (override the manifest's), ``time_limit_s``,
    ``memory_limit_mb`` (sandbox limits), ``trusted_rules`` (run the rules even where the
    OS confinement is unavailable; only for rules you trust).
    """
    limits = SandboxLimits(
        time_limit_s=float(options.pop("time_limit_s", 5.0)),
        memory_limit_mb=int(options.pop("memory_limit_mb", 512)),
        trusted_rules=bool(options.pop("trusted_rules", False)),
    )
    window_length = options.pop("window_length", None)
    if options:
        raise TypeError(f"rules:{path}: unknown option(s) {sorted(options)}")
    rule_set = load_rule_set(path, window_length=int(window_length) if window_length else None)
    return RuleSetDetector(rule_set, limits=limits, name=f"rules:{path}")
