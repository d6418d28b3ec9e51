"""The coarse-to-fine workflow as a small state machine over one window:

    locate -> plan -> act (tool rounds, bounded by the actor) -> detect
           -> evaluate -> [refine: detect again with the feedback] (bounded) -> done

and over a whole series into a :class:`SeriesPrediction`, several windows at a time when
``concurrency`` > 1 (LLM roles on an endpoint that serves requests in parallel; the
outputs keep the windows' order). The roles are any implementations of the protocols in
agents/roles.py (heuristic, LLM, or a mix); the workflow only wires them, records a
:class:`Trajectory` per window (with every step that completed, also when a later role
failed), and turns a window whose roles fail into a counted failure of a named kind
(:data:`FAILURE_KINDS`) that predicts nothing. A window whose roles raised (a refused or
timed-out backend call, a prompt that cannot fit) is also listed in the prediction's
``errors``: the result is incomplete and must not be cached as a success; an answer that
did not parse, or was cut at max_tokens, is a result. A fatal backend error (refused
credentials, an endpoint that does not answer) stops the series: :class:`WorkflowAborted`
carries the windows finished before it.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from anomamind.agents.detector_prompt import build_detector_messages, check_style
from anomamind.agents.parsing import parse_detection
from anomamind.agents.roles import RoleFailed, Roles, WindowTask
from anomamind.envs.windowing import make_windows
from anomamind.eval.convert import intervals_to_binary, intervals_to_scores
from anomamind.eval.registry import SeriesPrediction
from anomamind.types import Detection, Interval, Series, Step, Trajectory

#: Workflow inputs that an ablation can switch off (the paper's Table 3).
ABLATIONS: tuple[str, ...] = ("feature_extraction", "knowledge_memory", "localization")
#: Why a window fails: the detector's answer could not be parsed, or was cut at its
#: max_tokens; a backend failure of any role (timeout, reply_too_large, context_overflow,
#: image_not_seen, backend_error, ...: the kinds of agents/backends/base.py); any other
#: error in a role or tool.
FAILURE_KINDS: tuple[str, ...] = (
    "parse", "cut_at_max_tokens", "timeout", "reply_too_large", "context_overflow", "image_not_seen",
    "backend_error", "workflow_error",
)
#: The kinds that are the model's answer (a result, cached); the others are run-time errors.
ANSWER_FAILURES: frozenset[str | None] = frozenset({None, "parse", "cut_at_max_tokens"})


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
    """One window's final detection, its trajectory, why it failed (None: it did not), and
    the detector's per-point evidence strength in [0, 1) when it offers one
    (``evidence_scores``)."""

    detection: Detection
    trajectory: Trajectory
    failure: str | None = None
    error: str = ""
    evidence: np.ndarray | None = None

    @property
    def failed(self) -> bool:
        return self.failure is not None


@dataclass
class SeriesOutcome:
    prediction: SeriesPrediction
    trajectories: list[Trajectory] = field(default_factory=list)


class WorkflowAborted(RuntimeError):
    """A fatal backend error stopped the series; ``outcomes`` are the windows finished before."""

    fatal = True

    def __init__(self, cause: RoleFailed, outcomes: list[WindowOutcome]) -> None:
        super().__init__(str(cause.error))
        self.cause = cause
        self.kind = cause.kind
        self.outcomes = outcomes


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
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1 (got {concurrency})")
        self.roles = roles
        self.registry = registry
        self.context_factory = context_factory
        self.knowledge = knowledge
        self.config = config or WorkflowConfig()
        #: Windows of one series run at once (threads; the backends cap their own requests).
        self.concurrency = concurrency

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
        predicts nothing, the trajectory keeps the steps that completed and the failed
        one, and the outcome names the failure's kind; a fatal backend error is raised
        (RoleFailed). With
        ``keep_prompts`` off and a detector that does not read its messages
        (``reads_messages = False``, the heuristic), the detector prompts are not rendered."""
        render = keep_prompts or getattr(self.roles.detector, "reads_messages", True)
        messages_for = self.detector_messages if render else (lambda task, **kwargs: [])
        traj = Trajectory(task.task_id, info={"window": [task.window.start, task.window.end], **task.preprocessing})
        traj.info["disabled"] = list(task.disabled)
        later: list[Step] = []  # detector and evaluator steps, in order
        failure, error, evidence = None, "", None
        t0 = time.perf_counter()
        try:
            if "plan" not in task.upstream:
                self.upstream(task)
            up = task.upstream
            text, answer_step = self.roles.detector.detect(task, messages_for(task))
            later.append(answer_step)
            detection = self._parse(text, task, answer_step)
            rounds = 0
            while self.roles.evaluator is not None:
                verdict = self.roles.evaluator.evaluate(task, up["plan"], up["evidence"], detection)
                later.append(verdict.step)
                if not verdict.needs_refinement or rounds >= self.config.max_refinements:
                    break
                rounds += 1
                task.upstream["feedback"] = verdict
                messages = messages_for(task, feedback=verdict.feedback_text(), previous_answer=text)
                text, answer_step = self.roles.detector.detect(task, messages)
                later.append(answer_step)
                detection = self._parse(text, task, answer_step)
            traj.info["refinements"] = rounds
            if not detection.ok:
                cut = answer_step.info.get("finish_reason") == "length"
                failure, error = ("cut_at_max_tokens" if cut else "parse"), detection.parse_error
            scorer = getattr(self.roles.detector, "evidence_scores", None)
            evidence = scorer(task) if scorer is not None else None
        except RoleFailed as failed:
            later += failed.steps
            detection = Detection(parse_error=f"{failed.role} failed ({failed.kind}): {failed.error}")
            failure, error = failed.kind, str(failed)
            if failed.fatal:
                raise
        except Exception as err:  # a failing role fails this window only (batch work goes on)
            detection = Detection(parse_error=f"workflow error: {type(err).__name__}: {err}")
            traj.info["error"] = traceback.format_exc(limit=5)
            failure, error = "workflow_error", f"{type(err).__name__}: {err}"
        finally:
            task.upstream.pop("feedback", None)
        traj.steps = self._upstream_steps(task) + later
        traj.detection = detection
        traj.info["seconds"] = time.perf_counter() - t0
        if failure:
            traj.info["failure"] = failure
        return WindowOutcome(detection, traj, failure, error, evidence)

    @staticmethod
    def _upstream_steps(task: WindowTask) -> list[Step]:
        """The steps of the upstream roles that finished (all three unless one failed)."""
        up = task.upstream
        steps = [up[key].step for key in ("located", "plan") if key in up]
        return steps + (list(up["evidence"].steps) if "evidence" in up else [])

    @staticmethod
    def _parse(text: str, task: WindowTask, step: Step) -> Detection:
        """The detection; an answer cut at max_tokens fails whatever it holds (a cut answer
        is not the answer the model meant to give)."""
        detection = parse_detection(text, task.window.start, task.window.end)
        if step.info.get("finish_reason") == "length":
            detection.parse_error = f"cut at max_tokens: the answer stopped before it ended ({step.completion_tokens} tokens)"
            detection.intervals = []
        return detection

    # ------------------------------------------------------------------ a series

    def run_series(
        self, series: Series, trajectories: str | Path | None = None, keep_prompts: bool = True
    ) -> SeriesOutcome:
        """Every window of ``series`` (up to ``concurrency`` at once, outputs in window
        order); intervals are unioned into the series prediction, whose ``info`` counts
        the failed windows by kind with the first error of each (``window_failures``,
        ``first_errors``), the answers cut at max_tokens and the tokens used. Its score is
        the highest confidence covering each point (1-3, 0 outside) plus the detector's
        evidence strength in [0, 1) when it offers one, so points within a confidence level
        are ranked by evidence. With
        ``trajectories`` given, one JSON line per window is appended to that file (also
        for the windows finished before a fatal error)."""
        tasks = self.tasks(series)
        try:
            outcomes = self._run_windows(tasks, keep_prompts)
        except WorkflowAborted as aborted:
            if trajectories is not None:
                write_trajectories([o.trajectory for o in aborted.outcomes], trajectories)
            raise
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
            info={
                "windows": len(outcomes),
                **self.preprocessing_info(series),
                "disabled": list(self.config.disable),
                **failure_summary(outcomes),
            },
            errors=[o.error for o in outcomes if o.failure not in ANSWER_FAILURES],  # roles that raised
        )
        trajs = [o.trajectory for o in outcomes]
        if trajectories is not None:
            write_trajectories(trajs, trajectories)
        return SeriesOutcome(prediction, trajs)

    def _run_windows(self, tasks: list[WindowTask], keep_prompts: bool) -> list[WindowOutcome]:
        """The windows' outcomes in order; on a fatal error the windows not yet started are
        cancelled, the running ones finish, and WorkflowAborted carries the finished ones."""
        if self.concurrency <= 1 or len(tasks) <= 1:
            done: list[WindowOutcome] = []
            for task in tasks:
                try:
                    done.append(self.run_window(task, keep_prompts))
                except RoleFailed as fatal:
                    raise WorkflowAborted(fatal, done) from fatal
            return done
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(tasks))) as pool:
            futures = [pool.submit(self.run_window, task, keep_prompts) for task in tasks]
            wait(futures, return_when=FIRST_EXCEPTION)
            fatal = next((f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()), None)
            if fatal is None:
                return [f.result() for f in futures]
            for future in futures:
                future.cancel()
        finished = [f.result() for f in futures if f.done() and not f.cancelled() and f.exception() is None]
        if isinstance(fatal, RoleFailed):
            raise WorkflowAborted(fatal, finished) from fatal
        raise fatal


def failure_summary(outcomes: list[WindowOutcome]) -> dict[str, Any]:
    """Failed windows by kind, the first error of each kind, answers of any role cut at
    max_tokens, and the model requests and tokens of all steps."""
    kinds = Counter(o.failure for o in outcomes if o.failed)
    first: dict[str, str] = {}
    for o in outcomes:
        if o.failed and o.failure not in first:
            first[o.failure] = f"{o.trajectory.task_id}: {o.error}"[:500]
    steps = [s for o in outcomes for s in o.trajectory.steps]
    model_steps = [s for s in steps if s.prompt_tokens or s.completion_tokens or "finish_reason" in s.info]
    return {
        "window_failures": dict(kinds),
        "first_errors": first,
        "answers_cut_at_max_tokens": sum(s.info.get("finish_reason") == "length" for s in steps),
        "model_requests": len(model_steps),
        "prompt_tokens": sum(s.prompt_tokens for s in steps),
        "completion_tokens": sum(s.completion_tokens for s in steps),
    }


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
