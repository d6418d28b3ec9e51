"""The coarse-to-fine workflow as a small state machine over one window:

    locate -> plan -> act (tool rounds, bounded by the actor) -> detect
           -> evaluate -> [refine: detect again with the feedback] (bounded) -> done

and over a whole series, window by window, into a :class:`SeriesPrediction`. The roles are
any implementations of the protocols in agents/roles.py (heuristic, LLM, or a mix); the
workflow only wires them, records a :class:`Trajectory` per window, and turns a window
whose roles fail into a counted failure that predicts nothing (a role that raised, e.g. a
refused or timed-out backend call, is also listed in the prediction's ``errors``: the
result is incomplete and must not be cached as a success).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from anomamind.agents.detector_prompt import build_detector_messages, check_style
from anomamind.agents.parsing import parse_detection
from anomamind.agents.roles import Roles, WindowTask
from anomamind.envs.windowing import make_windows
from anomamind.eval.convert import intervals_to_binary, intervals_to_scores
from anomamind.eval.registry import SeriesPrediction
from anomamind.types import Detection, Interval, Series, Trajectory

#: Workflow inputs that an ablation can switch off (the paper's Table 3).
ABLATIONS: tuple[str, ...] = ("feature_extraction", "knowledge_memory", "localization")


@dataclass
class WorkflowConfig:
    """Window geometry, preprocessing mode, ablations, the refinement bound and the
    detector prompt's style (agents/detector_prompt.DETECTOR_PROMPTS)."""

    window: int = 100
    stride: int = 100
    causal: bool = False
    disable: tuple[str, ...] = ()
    max_refinements: int = 1
    detector_prompt: str = "compact"

    def __post_init__(self) -> None:
        check_style(self.detector_prompt)
        self.disable = tuple(self.disable)
        unknown = sorted(set(self.disable) - set(ABLATIONS))
        if unknown:
            raise ValueError(f"unknown ablation(s) {unknown}; known: {list(ABLATIONS)}")
        if self.max_refinements < 0:
            raise ValueError(f"max_refinements must be >= 0 (got {self.max_refinements})")


@dataclass
class WindowOutcome:
    """One window's final detection, its trajectory, whether it failed, and the detector's
    per-point evidence strength in [0, 1) when it offers one (``evidence_scores``)."""

    detection: Detection
    trajectory: Trajectory
    failed: bool
    evidence: np.ndarray | None = None


@dataclass
class SeriesOutcome:
    prediction: SeriesPrediction
    trajectories: list[Trajectory] = field(default_factory=list)


class Workflow:
    """Runs the roles over windows of a series.

    ``context_factory(series, causal)`` builds the tools' series-level context once per
    series (None when feature extraction is switched off); ``knowledge(series)`` gives the
    knowledge-memory entry (not called when the memory is switched off); ``registry`` is
    what the actor runs tool calls through.
    """

    def __init__(
        self,
        roles: Roles,
        registry: Any,
        *,
        context_factory: Callable[[Series, bool], Any],
        knowledge: Callable[[Series], Any] | None = None,
        config: WorkflowConfig | None = None,
    ) -> None:
        self.roles = roles
        self.registry = registry
        self.context_factory = context_factory
        self.knowledge = knowledge
        self.config = config or WorkflowConfig()

    # ------------------------------------------------------------------ tasks

    def preprocessing_info(self, series: Series) -> dict[str, Any]:
        """What series-level statistics the tools use, recorded in every trajectory."""
        if self.config.causal:
            return {"mode": "causal", "statistics": "prefix before the window (at least the training prefix)"}
        return {"mode": "whole-series", "statistics": "whole series"}

    def tasks(self, series: Series) -> list[WindowTask]:
        """One task per window; series-level context and knowledge are built once."""
        disabled = self.config.disable
        context = None if "feature_extraction" in disabled else self.context_factory(series, self.config.causal)
        knowledge = None
        if self.knowledge is not None and "knowledge_memory" not in disabled:
            knowledge = self.knowledge(series)
        info = self.preprocessing_info(series)
        return [
            WindowTask(series, w, context, knowledge, info, disabled)
            for w in make_windows(series, self.config.window, self.config.stride)
        ]

    # ------------------------------------------------------------------ one window

    def upstream(self, task: WindowTask) -> dict[str, Any]:
        """Locate, plan and act for ``task``; the results are also stored in ``task.upstream``."""
        located = self.roles.locator.locate(task)
        task.upstream["located"] = located
        plan = self.roles.planner.plan(task, located)
        task.upstream["plan"] = plan
        evidence = self.roles.actor.act(task, plan, self.registry)
        task.upstream["evidence"] = evidence
        return {"located": located, "plan": plan, "evidence": evidence}

    def detector_messages(
        self, task: WindowTask, *, feedback: str | None = None, previous_answer: str | None = None
    ) -> list[dict[str, Any]]:
        up = task.upstream
        return build_detector_messages(
            task, up.get("located"), up.get("plan"), up.get("evidence"),
            feedback=feedback, previous_answer=previous_answer, style=self.config.detector_prompt,
        )

    def run_window(self, task: WindowTask, keep_prompts: bool = True) -> WindowOutcome:
        """The whole state machine for one window. Any role error fails the window: it
        predicts nothing, and the error is kept in the trajectory. With ``keep_prompts``
        off and a detector that does not read its messages (``reads_messages = False``,
        the heuristic), the detector prompts are not rendered (benchmark speed)."""
        render = keep_prompts or getattr(self.roles.detector, "reads_messages", True)
        messages_for = self.detector_messages if render else (lambda task, **kwargs: [])
        traj = Trajectory(task.task_id, info={"window": [task.window.start, task.window.end], **task.preprocessing})
        traj.info["disabled"] = list(task.disabled)
        t0 = time.perf_counter()
        try:
            if "plan" not in task.upstream:
                self.upstream(task)
            up = task.upstream
            traj.steps += [up["located"].step, up["plan"].step, *up["evidence"].steps]
            text, step = self.roles.detector.detect(task, messages_for(task))
            traj.steps.append(step)
            detection = self._parse(text, task)
            rounds = 0
            while self.roles.evaluator is not None:
                verdict = self.roles.evaluator.evaluate(task, up["plan"], up["evidence"], detection)
                traj.steps.append(verdict.step)
                if not verdict.needs_refinement or rounds >= self.config.max_refinements:
                    break
                rounds += 1
                task.upstream["feedback"] = verdict
                messages = messages_for(task, feedback=verdict.feedback_text(), previous_answer=text)
                text, step = self.roles.detector.detect(task, messages)
                traj.steps.append(step)
                detection = self._parse(text, task)
            task.upstream.pop("feedback", None)
            traj.info["refinements"] = rounds
            scorer = getattr(self.roles.detector, "evidence_scores", None)
            evidence = scorer(task) if scorer is not None else None
        except Exception as err:  # a failing role fails this window only (batch work goes on)
            detection = Detection(parse_error=f"workflow error: {type(err).__name__}: {err}")
            traj.info["error"] = traceback.format_exc(limit=5)
            evidence = None
        traj.detection = detection
        traj.info["seconds"] = time.perf_counter() - t0
        return WindowOutcome(detection, traj, failed=not detection.ok, evidence=evidence)

    @staticmethod
    def _parse(text: str, task: WindowTask) -> Detection:
        return parse_detection(text, task.window.start, task.window.end)

    # ------------------------------------------------------------------ a series

    def run_series(
        self, series: Series, trajectories: str | Path | None = None, keep_prompts: bool = True
    ) -> SeriesOutcome:
        """Every window of ``series``; intervals are unioned into the series prediction.
        Its score is the highest confidence covering each point (1-3, 0 outside), plus the
        detector's evidence strength in [0, 1) when it offers one: detected points still
        rank above the rest and confidence levels stay thresholds, while points within a
        level are ranked by evidence. With ``trajectories`` given, one JSON line per window
        is appended to that file."""
        tasks = self.tasks(series)
        outcomes = [self.run_window(task, keep_prompts) for task in tasks]
        intervals = merge_intervals(iv for o in outcomes for iv in o.detection.intervals)
        n = len(series)
        scores = intervals_to_scores(intervals, n).astype(float)
        evidence = np.zeros(n)
        for task, outcome in zip(tasks, outcomes):
            if outcome.evidence is not None:
                span = evidence[task.window.start : task.window.end]
                np.maximum(span, outcome.evidence, out=span)
        prediction = SeriesPrediction(
            pred=intervals_to_binary(intervals, n).astype(np.int8),
            scores=scores + evidence,
            intervals=intervals,
            failed_windows=sum(o.failed for o in outcomes),
            info={"windows": len(outcomes), **self.preprocessing_info(series), "disabled": list(self.config.disable)},
            errors=[o.detection.parse_error for o in outcomes if "error" in o.trajectory.info],  # roles that raised
        )
        trajs = [o.trajectory for o in outcomes]
        if trajectories is not None:
            write_trajectories(trajs, trajectories)
        return SeriesOutcome(prediction, trajs)


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted intervals with overlapping or touching ones merged (overlapping windows may
    report the same anomaly twice); the merged interval keeps the highest confidence and
    the explanation and type of its most confident part."""
    merged: list[Interval] = []
    for iv in sorted(intervals, key=lambda i: (i.start, i.end)):
        last = merged[-1] if merged else None
        if last is not None and iv.start <= last.end + 1:
            if iv.confidence > last.confidence:
                last.type, last.explanation, last.confidence = iv.type, iv.explanation, iv.confidence
            last.end = max(last.end, iv.end)
        else:
            merged.append(Interval(iv.start, iv.end, iv.type, iv.explanation, iv.confidence))
    return merged


def write_trajectories(trajectories: Iterable[Trajectory], path: str | Path) -> None:
    """Append trajectories to a JSON-lines file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        for traj in trajectories:
            fh.write(traj.to_json() + "\n")
