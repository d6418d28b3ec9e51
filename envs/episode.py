"""One window's episode from the detector's side: the part of the workflow the detector acts in.

The upstream stages (locate -> plan -> act) come from the on-disk cache, or run once and are
stored there; then the detector may run tools of the registry for the window, submits
answers, and the evaluator reviews each submission while refinement rounds are left. The
last submission is the final answer; it is scored with the reward terms of rl/rewards.py
(when the window has labels) and the whole episode is recorded as a :class:`Trajectory`
(appended as a JSON line when a path is given).

Two drivers share this: the gymnasium env (envs/env.py: ``step(answer)`` is one
submission) and the TRL environment of multi-turn GRPO (rl/environment.py: tools and a
``submit_answer`` tool the model calls during generation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from anomamind.agents.parsing import parse_detection
from anomamind.agents.roles import EvaluatorOutput, WindowTask
from anomamind.envs.workflow import Workflow, write_trajectories
from anomamind.types import Detection, Step, ToolCall, ToolResult, Trajectory


def evidence_candidates(task: WindowTask) -> str:
    """The ranges the tools flagged, as the ``evidence`` column rule_matching reads."""
    evidence = task.upstream.get("evidence")
    ranges = []
    if evidence is not None:
        for r in evidence.tool_results:
            if r.ok and isinstance(r.output, dict):
                ranges += [[int(s), int(e)] for s, e, *_ in r.output.get("runs", [])]
    return json.dumps({"candidates": sorted(ranges)})


@dataclass
class Submission:
    """One submitted answer: its parse, its reward terms and the evaluator's verdict (None
    when it was not reviewed: no evaluator, refinement rounds spent, or review off)."""

    text: str
    detection: Detection
    terms: dict[str, float | None]
    verdict: EvaluatorOutput | None
    round: int

    @property
    def needs_refinement(self) -> bool:
        return self.verdict is not None and self.verdict.needs_refinement


class DetectorEpisode:
    """The detector's episode on ``task`` (see the module docstring).

    ``task`` is copied (the copy gets its own upstream results), so a pool of tasks can be
    shared by concurrent episodes. ``cache`` is an :class:`~anomamind.envs.cache.UpstreamCache`
    or None (upstream always computed); ``reward_config`` an ``rl.rewards.RewardConfig``
    (None: every term, default weights).
    """

    def __init__(
        self,
        task: WindowTask,
        workflow: Workflow,
        *,
        cache: Any = None,
        reward_config: Any = None,
        evaluate: bool = True,
        max_refinements: int = 1,
        trajectories: str | Path | None = None,
    ) -> None:
        self.task = replace(task, upstream={})
        self.workflow = workflow
        self.reward_config = reward_config
        self.evaluate = evaluate and workflow.roles.evaluator is not None
        self.max_refinements = int(max_refinements)
        self.trajectories = trajectories
        upstream = cache.load(self.task) if cache is not None else None
        self.cached = upstream is not None
        if upstream is None:
            upstream = workflow.upstream(self.task)
            if cache is not None:
                cache.store(self.task, upstream)
        self.task.upstream.update(upstream)
        window = self.task.window
        self.trajectory = Trajectory(
            self.task.task_id,
            steps=[upstream["located"].step, upstream["plan"].step, *upstream["evidence"].steps],
            info={"window": [window.start, window.end], "cached": self.cached, **self.task.preprocessing},
        )
        self.submissions: list[Submission] = []
        self.tool_calls = 0
        self.refinements = 0
        self.done = False

    def messages(self) -> list[dict[str, Any]]:
        """The detector's chat messages for the window (agents/detector_prompt.py)."""
        return self.workflow.detector_messages(self.task)

    def run_tools(self, calls: Iterable[ToolCall]) -> list[ToolResult]:
        """Run the detector's own tool calls through the workflow's registry (validated;
        every failure is an error text in the result); recorded in the trajectory."""
        self._check_running()
        calls = list(calls)
        results = self.workflow.registry.run_calls(calls, self.task)
        self.tool_calls += len(calls)
        step = Step("detector", [], "", tool_calls=calls, tool_results=results, info={"round": self.refinements})
        step.seconds = sum(r.seconds for r in results)
        self.trajectory.steps.append(step)
        return results

    def submit(self, text: str, review: bool = True) -> Submission:
        """Parse and score an answer; the evaluator reviews it while refinement rounds are
        left (and ``review`` is on). A verdict asking for refinement uses up a round."""
        self._check_running()
        task = self.task
        detection = parse_detection(text, task.window.start, task.window.end)
        round_ = self.refinements
        self.trajectory.steps.append(Step("detector", [], text, info={"round": round_}))
        verdict = None
        if review and self.evaluate and self.refinements < self.max_refinements:
            up = task.upstream
            verdict = self.workflow.roles.evaluator.evaluate(task, up["plan"], up["evidence"], detection)
            self.trajectory.steps.append(verdict.step)
            if verdict.needs_refinement:
                self.refinements += 1
        submission = Submission(text, detection, self._rewards(text), verdict, round_)
        self.submissions.append(submission)
        return submission

    def end(self, extra_rewards: dict[str, float] | None = None, truncated: bool = False) -> Trajectory:
        """Close the episode: the last submission is the final answer (none: an empty
        detection with a parse error). ``extra_rewards`` (costs of the driver) join the
        final terms and their ``total``. Writes the trajectory when a path was given."""
        self._check_running()
        traj = self.trajectory
        final = self.submissions[-1] if self.submissions else None
        traj.detection = final.detection if final else Detection(parse_error="no answer was submitted")
        traj.rewards = {k: v for k, v in (final.terms if final else {}).items() if v is not None}
        for name, value in (extra_rewards or {}).items():
            traj.rewards[name] = float(value)
            traj.rewards["total"] = traj.rewards.get("total", 0.0) + float(value)
        traj.info.update(
            refinements=self.refinements,
            submissions=len(self.submissions),
            tool_calls=self.tool_calls,
            truncated=truncated,
        )
        self.done = True
        if self.trajectories is not None:
            write_trajectories([traj], self.trajectories)
        return traj

    def _check_running(self) -> None:
        if self.done:
            raise RuntimeError(f"episode {self.task.task_id} is over")

    def _rewards(self, text: str) -> dict[str, float | None]:
        task = self.task
        if task.window.labels is None:
            return {}
        from anomamind.rl.rewards import score_completion

        return score_completion(
            text,
            self.reward_config,
            window_start=task.window.start,
            window_end=task.window.end,
            labels=task.window.labels.tolist(),
            evidence=evidence_candidates(task),
        )
