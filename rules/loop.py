"""The Argos-style training loop: propose -> check -> validate -> mutate -> select top-k.

One loop serves both modalities; a :class:`RuleTask` says how rules of one modality are
checked, run and scored (:class:`SeriesTask` here: point flags, macro point F1 over series;
:class:`~anomamind.rules.log_task.LogTask`: one flag per log window, window F1).
Each round the proposer proposes new rules and mutates the best ones found so far.
Every candidate is

1. checked: the static check plus one run on sample training windows in a fresh sandbox
   process (forked per candidate); a failure is fed back to the proposer for repair (``max_repairs`` times);
2. validated: run (in a long-lived sandbox worker) on the validation split and scored,
   after AND/OR with a base detector when training for combination; a candidate that
   scores below its parent has the windows that got worse fed back to the proposer for one
   refinement, and a new proposal that misclassifies sample windows of its check (log
   rules: the contrastive samples) has those windows fed back for one refinement.

All validated candidates stay in the pool (parents are never replaced by their mutants,
so the best unmutated rule is kept). Training stops after ``max_rounds``, after
``patience`` rounds without a validation gain of ``min_improvement``, or when the time
budget is spent. The rule set is then selected greedily on validation: the best rule,
plus rules whose OR with the set raises validation F1, up to ``top_k``.
"""

from __future__ import annotations

import ast
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from anomamind.rules.data import SplitData, SplitSpec
from anomamind.rules.proposer import Candidate, Proposer
from anomamind.rules.rule import Rule, RuleSet
from anomamind.rules.sandbox import RuleRejected, SandboxLimits, SandboxWorker, check_rule
from anomamind.rules.scoring import MacroF1, combine

log = logging.getLogger(__name__)

#: Characters of a rejected candidate's code kept as its sample.
REJECTED_SAMPLE_CHARS = 600


@dataclass
class OfflineOptions:
    beam_width: int = 6
    max_conditions: int = 3
    bootstrap: float = 0.8


def _default_llm_backend() -> dict[str, Any]:
    return {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "default", "api_key_env": "OPENAI_API_KEY"}


@dataclass
class LLMOptions:
    """The LLM proposer: ``backend`` takes the keys of a backend in configs/agents/llm.yaml
    (kind, base_url, model, api_key_env, timeout_s, max_retries, context_tokens, ...:
    agents/backends/factory.BackendConfig), then the sampling settings."""

    backend: dict[str, Any] = field(default_factory=_default_llm_backend)
    temperature: float = 0.7
    max_tokens: int = 1500
    example_windows: int = 3

    def __post_init__(self) -> None:
        # keys given (a config file's, --set llm.backend.base_url=...) overlay the defaults
        self.backend = {**_default_llm_backend(), **(self.backend or {})}


@dataclass
class LoopConfig:
    """The loop's own settings, shared by series rules and log rules."""

    proposer: str = "offline"  # offline | llm
    candidates_per_round: int = 4
    mutate_top: int = 2
    max_rounds: int = 6
    patience: int = 2
    min_improvement: float = 0.002
    time_budget_s: float = 1800.0
    top_k: int = 3
    max_repairs: int = 2
    max_rejected_samples: int = 50  # rejected candidates whose code (cut) is kept in the manifest
    seed: int = 0
    combine_with: str | None = None  # a detector to combine with, e.g. "sr" (series) or "pca" (logs)
    combine_mode: str = "and"
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    llm: LLMOptions = field(default_factory=LLMOptions)


@dataclass
class RuleTrainConfig(LoopConfig):
    """Everything ``anomamind rules train`` can be told (configs/rules/*.yaml)."""

    window_length: int = 1000
    window_length_choices: list[int] = field(default_factory=list)  # if set: train each, keep the best on validation
    sample_windows: int = 8
    split: SplitSpec = field(default_factory=SplitSpec)
    offline: OfflineOptions = field(default_factory=OfflineOptions)


@dataclass
class Evaluated:
    """A candidate that passed its check, with its validation flags and score."""

    candidate: Candidate
    f1: float
    flags: np.ndarray  # the rule's own 0/1 flags on the validation split (before combination)
    per_series: np.ndarray  # the score of each validation group (series; one value for a log)
    sample_flags: np.ndarray | None = None  # the rule's flags on the check's sample windows


@dataclass
class TrainResult:
    rule_set: RuleSet
    validation_f1: float
    pool: list[Evaluated]
    rejected: list[dict[str, Any]]
    history: list[dict[str, Any]]


def _normalised(source: str) -> str:
    """The code without comments and docstrings, to skip re-evaluating the same rule."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def sample_bounds(split: SplitData, n_windows: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A few training windows (anomalous ones first) for the check run, re-based at 0."""
    anomalous = [i for i, (a, b) in enumerate(split.bounds) if split.labels[a:b].any()]
    anomalous_set = set(anomalous)
    normal = [i for i in range(len(split.bounds)) if i not in anomalous_set]
    chosen = sorted((anomalous[: n_windows // 2] + normal)[:n_windows])
    pieces, bounds, offset = [], [], 0
    for i in chosen:
        a, b = split.bounds[i]
        pieces.append(split.values[a:b])
        bounds.append((offset, offset + b - a))
        offset += b - a
    return np.concatenate(pieces), bounds


class RuleTask(Protocol):
    """How the loop checks, runs and scores the rules of one modality."""

    def check(self, source: str, name: str, checker: SandboxWorker) -> np.ndarray:
        """Static check plus one sandboxed run on sample training windows (``checker`` forks a
        fresh process per call); returns the flags on the sample, raises RuleRejected."""
        ...

    def run(self, source: str, name: str, worker: SandboxWorker) -> np.ndarray:
        """The rule's own boolean flags on the validation split; raises RuleRejected."""
        ...

    def score(self, flags: np.ndarray) -> np.ndarray:
        """Validation score of each group (its mean is the rule's score), after combination."""
        ...

    def regression_report(self, child: Evaluated, parent: Evaluated) -> str:
        """The validation windows where ``child`` did worse than ``parent``, as text."""
        ...

    def sample_report(self, result: Evaluated) -> str | None:
        """The check's sample windows a new rule got wrong, as text (None: nothing to report)."""
        ...

    def rule_set(self, rules: list[Rule], combine_with: dict[str, str] | None, dataset: str) -> RuleSet:
        """The selected rules packaged with this modality's window settings."""
        ...


class SeriesTask:
    """Series rules: 0/1 per point, macro point F1 over the validation series."""

    def __init__(self, train: SplitData, validation: SplitData, config: RuleTrainConfig):
        self.validation = validation
        self.window_length = config.window_length
        self.mode = config.combine_mode if config.combine_with else None
        self.scorer = MacroF1(validation.labels, validation.starts)
        self.sample_values, self.sample_bounds = sample_bounds(train, config.sample_windows)

    def check(self, source: str, name: str, checker: SandboxWorker) -> np.ndarray:
        return check_rule(source, self.sample_values, self.sample_bounds, name=name, checker=checker)

    def run(self, source: str, name: str, worker: SandboxWorker) -> np.ndarray:
        return worker.run(source, self.validation.values, self.validation.bounds, name=name).astype(bool)

    def score(self, flags: np.ndarray) -> np.ndarray:
        return self.scorer.per_series(combine(self.validation.base, flags, self.mode))

    def regression_report(self, child: Evaluated, parent: Evaluated, max_examples: int = 3) -> str:
        split = self.validation
        lines = [f"Validation F1 fell from {parent.f1:.3f} ({parent.candidate.name}) to {child.f1:.3f}."]
        worse = []
        for (a, b), s in zip(split.bounds, split.window_series):
            truth = split.labels[a:b]
            c_flags = combine(None if split.base is None else split.base[a:b], child.flags[a:b], self.mode)
            p_flags = combine(None if split.base is None else split.base[a:b], parent.flags[a:b], self.mode)
            c_err = int(np.count_nonzero(c_flags != truth))
            p_err = int(np.count_nonzero(p_flags != truth))
            if c_err > p_err:
                worse.append((c_err - p_err, a, b, s, truth, c_flags, p_flags))
        worse.sort(key=lambda w: -w[0])
        for extra, a, b, s, truth, c_flags, p_flags in worse[:max_examples]:
            offset = split.starts[s]
            lines.append(
                f"- series {split.series[s].name}, points {a - offset}..{b - offset - 1}: {extra} more wrong points; "
                f"true anomalies at {_ranges(np.flatnonzero(truth))}, parent flagged {_ranges(np.flatnonzero(p_flags))}, "
                f"new rule flagged {_ranges(np.flatnonzero(c_flags))} (offsets within the window)"
            )
        return "\n".join(lines)

    def sample_report(self, result: Evaluated) -> str | None:
        """Series rules are refined only after a regression (Argos's loop)."""
        return None

    def rule_set(self, rules: list[Rule], combine_with: dict[str, str] | None, dataset: str) -> RuleSet:
        return RuleSet(rules, window_length=self.window_length, dataset=dataset, combine_with=combine_with)


class RuleTrainer:
    """One training run for one dataset (see the module docstring for the stages)."""

    def __init__(self, proposer: Proposer, task: RuleTask, config: LoopConfig):
        self.proposer = proposer
        self.task = task
        self.config = config
        self.pool: dict[str, Evaluated] = {}
        self.rejected: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self._seen: set[str] = set()

    # -- stages ---------------------------------------------------------------------------
    def reject(self, candidate: Candidate, stage: str, err: RuleRejected) -> None:
        """Record a rejection; the first ``max_rejected_samples`` keep the start of the
        candidate's code, so a run that rejects everything shows what was proposed. The
        first is also logged."""
        record = {"name": candidate.name, "stage": stage, "kind": err.kind, "reason": err.reason}
        if sum("sample" in r for r in self.rejected) < self.config.max_rejected_samples:
            record["sample"] = candidate.source[:REJECTED_SAMPLE_CHARS]
        if not self.rejected:
            log.warning("first rejected candidate %s (%s: %s):\n%s", candidate.name, stage, err,
                        candidate.source[:REJECTED_SAMPLE_CHARS])
        else:
            log.info("rule %s rejected (%s): %s", candidate.name, stage, err)
        self.rejected.append(record)

    def check(self, candidate: Candidate, checker: SandboxWorker) -> tuple[Candidate, np.ndarray] | None:
        """The candidate (or its repair) and its sample flags once it passes the check; None if it never does."""
        for attempt in range(self.config.max_repairs + 1):
            try:
                return candidate, self.task.check(candidate.source, candidate.name, checker)
            except RuleRejected as err:
                self.reject(candidate, "check", err)
                if attempt == self.config.max_repairs:
                    return None
                repaired = self.proposer.repair(candidate, str(err))
                if repaired is None:
                    return None
                candidate = repaired
        return None

    def validate(self, candidate: Candidate, worker: SandboxWorker, sample_flags: np.ndarray | None = None
                 ) -> Evaluated | None:
        try:
            flags = self.task.run(candidate.source, candidate.name, worker)
        except RuleRejected as err:
            self.reject(candidate, "validate", err)
            return None
        per_series = self.task.score(flags)
        return Evaluated(candidate, float(per_series.mean()), flags, per_series, sample_flags)

    def evaluate(self, candidate: Candidate, checker: SandboxWorker, worker: SandboxWorker) -> Evaluated | None:
        """Check, validate, and refine once after a regression (or, for a new rule, after
        misclassified check samples); adds results to the pool."""
        key = _normalised(candidate.source)
        if key in self._seen:
            return None
        self._seen.add(key)
        passed = self.check(candidate, checker)
        if passed is None:
            return None
        checked, sample_flags = passed
        if checked is not candidate:  # a repair: remember its code too, and skip known code
            repaired_key = _normalised(checked.source)
            if repaired_key in self._seen:
                return None
            self._seen.add(repaired_key)
        result = self.validate(checked, worker, sample_flags)
        if result is None:
            return None
        self.pool[checked.name] = result
        parent = self.pool.get(checked.parent or "")
        feedback = None
        if parent is not None and result.f1 < parent.f1:
            feedback = self.task.regression_report(result, parent)
        elif parent is None and checked.origin in ("proposed", "repaired"):
            feedback = self.task.sample_report(result)
        if feedback is not None:
            refined = self.proposer.refine(checked, feedback)
            if refined is not None:
                self.evaluate(refined, checker, worker)
        return result

    def select(self) -> tuple[list[Evaluated], float]:
        """Greedy top-k on validation: add the rule whose OR raises the set's F1 most."""
        ranked = sorted(self.pool.values(), key=lambda e: -e.f1)
        if not ranked:
            return [], 0.0
        chosen = [ranked[0]]
        union = ranked[0].flags.copy()
        best = ranked[0].f1
        while len(chosen) < self.config.top_k:
            gains = []
            for e in ranked:
                if any(e is c for c in chosen):
                    continue
                f1 = float(self.task.score(union | e.flags).mean())
                gains.append((f1, e))
            if not gains:
                break
            f1, e = max(gains, key=lambda g: g[0])
            if f1 <= best + self.config.min_improvement:
                break
            chosen.append(e)
            union |= e.flags
            best = f1
        return chosen, best

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> tuple[list[Evaluated], float]:
        config = self.config
        started = time.monotonic()
        best, stale = -1.0, 0
        with SandboxWorker(config.sandbox, fresh_process_per_call=True) as checker, SandboxWorker(config.sandbox) as worker:
            for round_index in range(config.max_rounds):
                if time.monotonic() - started > config.time_budget_s:
                    log.info("time budget spent after %d rounds", round_index)
                    break
                seed = config.seed + round_index
                candidates = self.proposer.propose(config.candidates_per_round, seed)
                for parent in sorted(self.pool.values(), key=lambda e: -e.f1)[: config.mutate_top]:
                    candidates += self.proposer.mutate(parent.candidate, seed)
                evaluated = [e for e in (self.evaluate(c, checker, worker) for c in candidates) if e is not None]
                round_best = max((e.f1 for e in self.pool.values()), default=0.0)
                self.history.append({
                    "round": round_index, "seed": seed, "candidates": len(candidates),
                    "validated": len(evaluated), "best_validation_f1": round(round_best, 4),
                    "seconds": round(time.monotonic() - started, 1),
                })
                log.info("round %d: %d candidates, %d validated, best validation F1 %.4f",
                         round_index, len(candidates), len(evaluated), round_best)
                if round_best > best + config.min_improvement:
                    best, stale = round_best, 0
                else:
                    stale += 1
                    if stale >= config.patience:
                        break
        return self.select()


def _ranges(indices: np.ndarray) -> str:
    if indices.size == 0:
        return "nothing"
    breaks = np.flatnonzero(np.diff(indices) > 1)
    starts = np.concatenate([[indices[0]], indices[breaks + 1]])
    ends = np.concatenate([indices[breaks], [indices[-1]]])
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts, ends)]
    return ", ".join(parts[:8]) + (" ..." if len(parts) > 8 else "")


def train_rule_set(
    proposer: Proposer, train: SplitData, validation: SplitData, config: RuleTrainConfig, dataset: str = ""
) -> TrainResult:
    """Run the loop on series rules and package the selected rules as a :class:`RuleSet`."""
    return train_with_task(proposer, SeriesTask(train, validation, config), config, dataset)


def train_with_task(proposer: Proposer, task: RuleTask, config: LoopConfig, dataset: str = "") -> TrainResult:
    """Run the loop for any modality and package the selected rules with the task's windows."""
    trainer = RuleTrainer(proposer, task, config)
    chosen, set_f1 = trainer.run()
    if not chosen:
        reasons = sorted({r["kind"] for r in trainer.rejected})
        first = next((r for r in trainer.rejected if "sample" in r), None)
        shown = f"; the first rejected candidate ({first['kind']}: {first['reason']}) began:\n{first['sample']}" if first else ""
        raise RuntimeError(f"{dataset or 'rule training'}: no candidate passed the check and validation "
                           f"(rejections: {', '.join(reasons) or 'none proposed'}){shown}")
    rules = [
        Rule(
            name=e.candidate.name,
            source=e.candidate.source,
            meta={
                "validation_f1": round(e.f1, 4),
                "parent": e.candidate.parent,
                "origin": e.candidate.origin,
                "proposer": e.candidate.proposer,
                "seed": e.candidate.seed,
                "thresholds": e.candidate.thresholds,
            },
        )
        for e in chosen
    ]
    combine_with = {"detector": config.combine_with, "mode": config.combine_mode} if config.combine_with else None
    rule_set = task.rule_set(rules, combine_with, dataset)
    return TrainResult(rule_set, set_f1, list(trainer.pool.values()), trainer.rejected, trainer.history)
