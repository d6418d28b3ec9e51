"""Detectors of the benchmark runner, by name.

A detector turns a whole :class:`~anomamind.types.Series` into a
:class:`SeriesPrediction`. Entries name their factory as a ``"module:factory"`` string so
that listing them imports nothing heavy; a name ending in ``:`` takes an argument
(``rules:PATH``, ``checkpoint:PATH``). Factories are called as
``factory(argument, **options)`` for argument-taking names and ``factory(**options)``
otherwise; for factories with an ``overrides`` parameter (the agents), options they do not
take are passed on as overrides of their config file.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from anomamind.types import Interval, Series


@dataclass
class SeriesPrediction:
    """A detector's output on one series.

    ``pred`` is the detector's own 0/1 decision per point (its threshold rule, never one
    picked on the labels); ``scores`` a continuous score per point for threshold-free
    metrics (for interval detectors: the highest confidence of the covering intervals, to
    which the workflow agents add their evidence strength in [0, 1));
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


@dataclass(frozen=True)
class DetectorEntry:
    """A registered detector: its ``"module:factory"``, a one-line summary for
    ``anomamind detectors``, and the optional modules it needs (with the extra that
    installs them)."""

    factory: str
    summary: str
    requires: tuple[str, ...] = ()
    extra: str = ""

    def missing(self) -> list[str]:
        """The required modules that are not installed (looked up, not imported)."""
        return [module for module in self.requires if importlib.util.find_spec(module) is None]


#: name -> entry. Names ending in ":" take an argument after the colon. An entry may also be
#: a bare "module:factory" string (tests register stand-ins that way); shipped entries have
#: a summary (tests/test_cli_grammar.py checks it).
DETECTORS: dict[str, DetectorEntry | str] = {
    # classical baselines (eval/baselines)
    "fft": DetectorEntry("anomamind.eval.baselines:make_fft",
                         "TimeEval's FFT: deviation from a 5-coefficient Fourier reconstruction, local z-score"),
    "sr": DetectorEntry("anomamind.eval.baselines:make_spectral_residual",
                        "Spectral Residual (Ren et al., KDD 2019): saliency of the log-spectrum residual"),
    "iforest": DetectorEntry("anomamind.eval.baselines:make_iforest",
                             "Isolation Forest over sliding windows, fitted on the training prefix"),
    "iforest-unsup": DetectorEntry("anomamind.eval.baselines:make_iforest_unsupervised",
                                   "Isolation Forest over sliding windows, fitted on the whole series (as TSB-AD)"),
    "zscore": DetectorEntry("anomamind.eval.baselines:make_rolling_zscore",
                            "rolling robust z-score against the preceding 100 points"),
    "zscore-diff": DetectorEntry("anomamind.eval.baselines:make_rolling_zscore_diff",
                                 "rolling robust z-score of the first differences (jumps, level shifts)"),
    "matrix-profile": DetectorEntry("anomamind.eval.baselines:make_matrix_profile",
                                    "matrix-profile discords from a stumpy self-join",
                                    requires=("stumpy",), extra="matrixprofile"),
    # the agentic workflow (envs/) with heuristic or LLM roles
    "heuristic-agent": DetectorEntry("anomamind.envs.detectors:make_heuristic_agent",
                                     "the agentic workflow with deterministic heuristic roles (no LLM)"),
    "llm-agent": DetectorEntry("anomamind.envs.detectors:make_llm_agent",
                               "the agentic workflow with LLM roles over chat backends (configs/agents/llm.yaml)"),
    # learned rules (rules/) and trained checkpoints (rl/)
    "rules:": DetectorEntry("anomamind.rules.detector:make_rule_detector",
                            "a learned rule set folder or rule file (anomamind rules train), run in a sandbox"),
    "checkpoint:": DetectorEntry("anomamind.rl.checkpoint_detector:make_checkpoint_detector",
                                 "a trained detector model folder as the detector of the heuristic workflow",
                                 requires=("torch", "transformers"), extra="train"),
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


def describe_detectors() -> list[tuple[str, str, str]]:
    """``(name, summary, note)`` per registered detector; ``note`` says which optional
    modules are missing and how to install them ("" when none is)."""
    rows = []
    for name in DETECTORS:
        entry = _entry(name)
        missing = entry.missing()
        note = f"missing {', '.join(missing)}: pip install 'anomamind[{entry.extra}]'" if missing else ""
        rows.append((name + "ARG" if name.endswith(":") else name, entry.summary, note))
    return rows


def _entry(name: str) -> DetectorEntry:
    entry = DETECTORS[name]
    return DetectorEntry(entry, "") if isinstance(entry, str) else entry


def route_config_overrides(factory: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Options the factory does not take become overrides of its config file when it takes
    ``overrides`` (the agents: ``knowledge.YAHOO.thresholds.spike=7``, ``max_tool_rounds=1``),
    so one ``--set`` reaches both; other factories get ``options`` unchanged."""
    from anomamind.config import format_assignment

    params = inspect.signature(factory).parameters
    if "overrides" not in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return options
    routed = {key: value for key, value in options.items() if key in params}
    extra = [format_assignment(key, value) for key, value in options.items() if key not in params]
    if extra:
        routed["overrides"] = list(routed.get("overrides") or []) + extra
    return routed


def create_detector(spec: str, **options: Any) -> SeriesDetector:
    """Build the detector named ``spec`` (e.g. ``"sr"`` or ``"rules:out/rules/YAHOO"``)."""
    key, argument = _resolve(spec)
    module_name, attr = _entry(key).factory.split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    options = route_config_overrides(factory, options)
    detector = factory(argument, **options) if argument is not None else factory(**options)
    if not getattr(detector, "name", None):
        detector.name = spec
    return detector
