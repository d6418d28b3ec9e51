"""The five roles of the coarse-to-fine workflow: their inputs, outputs and interfaces.

Every role exists twice, as a deterministic heuristic (agents/heuristic.py) and as an LLM
role over a chat backend (agents/llm_roles.py). The workflow (envs/workflow.py) only sees
the protocols below, so either kind (or a mix) can fill any slot.

Data flow for one window::

    task -> Locator.locate -> LocatorOutput
         -> Planner.plan   -> PlanOutput (tool calls + thresholds)
         -> Actor.act      -> Evidence (tool results, possibly several rounds)
         -> detector_prompt.build_detector_messages -> DetectorRole.detect -> answer text
         -> Evaluator.evaluate -> EvaluatorOutput (maybe one more detect round)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from anomamind.types import Detection, Interval, Series, Step, ToolResult, ToolCall, Window

#: Names of the roles, as written in ``Step.role``.
ROLE_NAMES: tuple[str, ...] = ("locator", "planner", "actor", "detector", "evaluator")


class RoleFailed(Exception):
    """A role could not finish (its model request failed, or its prompt cannot fit).

    ``steps`` are the role's steps up to and including the failed one (whose ``info``
    holds the error, its ``failure`` kind and the request attempts), so the trajectory
    keeps everything that happened; ``kind`` and ``fatal`` come from the cause (a fatal
    cause, like refused credentials, stops the whole run).
    """

    def __init__(self, role: str, error: Exception, steps: list[Step]) -> None:
        super().__init__(f"{role}: {error}")
        self.role = role
        self.error = error
        self.steps = steps
        self.kind: str = getattr(error, "kind", "workflow_error")
        self.fatal: bool = bool(getattr(error, "fatal", False))


@dataclass
class WindowTask:
    """Everything the roles may look at for one window.

    ``context`` is the tools' :class:`anomamind.tools.context.ToolContext` (series-level
    statistics the tools use for scale), ``knowledge`` the dataset's entry of the knowledge
    memory (:class:`anomamind.tools.knowledge.DatasetKnowledge`) or None when the
    knowledge memory is switched off. ``preprocessing`` says where series-level statistics
    came from (``{"mode": "causal" | "whole-series", ...}``) so trajectories record it.
    ``disabled`` lists the workflow inputs switched off for an ablation
    (``feature_extraction``, ``knowledge_memory``, ``localization``).
    """

    series: Series
    window: Window
    context: Any = None
    knowledge: Any = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    disabled: tuple[str, ...] = ()
    #: Filled by the workflow before the detector runs: the structured upstream outputs
    #: (``located``, ``plan``, ``evidence``) and, in a refinement round, ``feedback`` (an
    #: EvaluatorOutput). LLM detectors read only the messages; programmatic detectors
    #: read the same evidence here instead of re-parsing its text rendering.
    upstream: dict[str, Any] = field(default_factory=dict)

    @property
    def task_id(self) -> str:
        return self.window.window_id

    @property
    def last_index(self) -> int:
        """Last index (inclusive, absolute) of the window."""
        return self.window.end - 1


@dataclass
class LocatorOutput:
    """Coarse localisation: candidate intervals (absolute, inclusive) and a description."""

    candidates: list[Interval]
    description: str
    step: Step


@dataclass
class PlanOutput:
    """Which tools to call with which arguments, and the thresholds the detector should use."""

    text: str
    tool_calls: list[ToolCall]
    thresholds: dict[str, float]
    step: Step


@dataclass
class Evidence:
    """What the actor gathered: every tool result, and one step per tool round."""

    tool_results: list[ToolResult]
    steps: list[Step]


@dataclass
class EvaluatorOutput:
    """The evaluator's verdict: whether to refine, what is wrong, what to try instead."""

    needs_refinement: bool
    issues: list[str]
    suggestions: list[str]
    quality: dict[str, Any]
    step: Step

    def feedback_text(self) -> str:
        """The feedback the detector reads in a refinement round."""
        lines = [f"- issue: {i}" for i in self.issues]
        lines += [f"- suggestion: {s}" for s in self.suggestions]
        return "\n".join(lines) if lines else "- no issues found"


@runtime_checkable
class Locator(Protocol):
    def locate(self, task: WindowTask) -> LocatorOutput: ...


@runtime_checkable
class Planner(Protocol):
    def plan(self, task: WindowTask, located: LocatorOutput) -> PlanOutput: ...


@runtime_checkable
class Actor(Protocol):
    """Runs the plan's tool calls through ``registry`` (a ``ToolRegistry``); may run more
    rounds after seeing results, up to its own configured bound."""

    def act(self, task: WindowTask, plan: PlanOutput, registry: Any) -> Evidence: ...


@runtime_checkable
class DetectorRole(Protocol):
    """Reads the chat messages from agents/detector_prompt.py and returns the answer TEXT
    (``<think>...</think>`` then a JSON array), parsed by agents/parsing.parse_detection.

    A detector may also offer ``evidence_scores(task) -> array | None``: a per-point
    strength in [0, 1) for the window, which the workflow adds to the intervals'
    confidence so threshold-free metrics can rank points (the heuristic detector does)."""

    def detect(self, task: WindowTask, messages: list[dict[str, Any]]) -> tuple[str, Step]: ...


@runtime_checkable
class Evaluator(Protocol):
    def evaluate(
        self, task: WindowTask, plan: PlanOutput, evidence: Evidence, detection: Detection
    ) -> EvaluatorOutput: ...


@dataclass
class Roles:
    """The five role implementations one workflow runs with."""

    locator: Locator
    planner: Planner
    actor: Actor
    detector: DetectorRole
    evaluator: Evaluator | None = None
