"""Detectors of the benchmark runner, by name.

A detector turns a whole :class:`~anomamind.types.Series` into a
:class:`SeriesPrediction`. Entries are ``"module:factory"`` strings so that listing names
imports nothing heavy; a name ending in ``:`` takes an argument (``rules:PATH``,
``checkpoint:PATH``). Factories are called as ``factory(argument, **options)`` for
argument-taking names and ``factory(**options)`` otherwise.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from anomamind.types import Interval, Series


@dataclass
class SeriesPrediction:
    """A detector's output on one series.

    ``pred`` is the detector's own 0/1 decision per point (its threshold rule, never one
    picked on the labels); ``scores`` a continuous score per point for threshold-free
    metrics (for interval detectors: the highest confidence of the covering intervals);
    ``intervals`` the interval view when the detector has one; ``failed_windows`` counts
    windows whose detection failed (they predict nothing but are counted). ``errors``
    lists run-time failures (a backend that refused, a rule that timed out), as opposed to
    answers that were merely wrong: such a prediction is incomplete, so the benchmark
    records its pair as failed and computes it again on the next run.
    """

    pred: np.ndarray
    scores: np.ndarray
    intervals: list[Interval] | None = None
    failed_windows: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class SeriesDetector(Protocol):
    """What the benchmark runner needs from a detector."""

    name: str

    def detect(self, series: Series) -> SeriesPrediction: ...


#: name -> "module:factory". Names ending in ":" take an argument after the colon.
DETECTORS: dict[str, str] = {
    # classical baselines (eval/baselines)
    "fft": "anomamind.eval.baselines:make_fft",
    "sr": "anomamind.eval.baselines:make_spectral_residual",
    "iforest": "anomamind.eval.baselines:make_iforest",
    "iforest-unsup": "anomamind.eval.baselines:make_iforest_unsupervised",
    "zscore": "anomamind.eval.baselines:make_rolling_zscore",
    "zscore-diff": "anomamind.eval.baselines:make_rolling_zscore_diff",
    "matrix-profile": "anomamind.eval.baselines:make_matrix_profile",
    # the agentic workflow (envs/) with heuristic or LLM roles
    "heuristic-agent": "anomamind.envs.detectors:make_heuristic_agent",
    "llm-agent": "anomamind.envs.detectors:make_llm_agent",
    # learned rules (rules/) and trained checkpoints (rl/)
    "rules:": "anomamind.rules.detector:make_rule_detector",
    "checkpoint:": "anomamind.rl.checkpoint_detector:make_checkpoint_detector",
}

#: Options whose value is a file the detector writes (not one it reads: the benchmark's
#: cache key hashes the files named by the other options).
OUTPUT_OPTIONS: frozenset[str] = frozenset({"trajectories"})


class UnknownDetectorError(KeyError):
    """A detector name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def available_detectors() -> list[str]:
    """Registered names; argument-taking ones are shown as ``name:ARG``."""
    return [name + "ARG" if name.endswith(":") else name for name in DETECTORS]


def _resolve(spec: str) -> tuple[str, str | None]:
    if spec in DETECTORS and not spec.endswith(":"):
        return spec, None
    if ":" in spec:
        prefix, argument = spec.split(":", 1)
        if prefix + ":" in DETECTORS and argument:
            return prefix + ":", argument
    raise UnknownDetectorError(
        f"unknown detector {spec!r}; registered: {', '.join(available_detectors())}"
    )


def create_detector(spec: str, **options: Any) -> SeriesDetector:
    """Build the detector named ``spec`` (e.g. ``"sr"`` or ``"rules:out/rules/YAHOO"``)."""
    key, argument = _resolve(spec)
    module_name, attr = DETECTORS[key].split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    detector = factory(argument, **options) if argument is not None else factory(**options)
    if not getattr(detector, "name", None):
        detector.name = spec
    return detector
