"""The gymnasium-style environment whose agent is the detector ("anomamind/Workflow-v0").

``reset`` picks a window (named by ``options`` or drawn with the env's seeded generator
from the window pool), runs or loads from the disk cache the upstream stages (locate ->
plan -> act) and returns the detector's chat messages. ``step(answer_text)`` parses the
answer, scores it with the reward terms of rl/rewards.py when the window has labels, runs
the evaluator (when on) and either terminates or returns the refinement messages (the
previous answer plus the evaluator's feedback), at most ``max_refinements`` times.
Every episode is recorded as a :class:`Trajectory` (appended as a JSON line when a path
is given). The episode itself is envs/episode.DetectorEpisode, which the multi-turn GRPO
environment (rl/environment.py) drives as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
from gymnasium import spaces

from anomamind.agents.roles import WindowTask
from anomamind.envs.cache import UpstreamCache
from anomamind.envs.episode import DetectorEpisode
from anomamind.envs.workflow import Workflow
from anomamind.types import DataError, Series

ENV_ID = "anomamind/Workflow-v0"


class ChatMessages(spaces.Space):
    """Observation space: a list of OpenAI-style ``{"role", "content"}`` messages."""

    def __init__(self) -> None:
        super().__init__(shape=None, dtype=None)

    def contains(self, x: Any) -> bool:
        return isinstance(x, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in x)

    def sample(self, mask: Any = None, probability: Any = None) -> list[dict[str, Any]]:
        return [{"role": "user", "content": ""}]


class AnswerText(spaces.Space):
    """Action space: the detector's answer text."""

    def __init__(self) -> None:
        super().__init__(shape=None, dtype=None)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return "<think>nothing stands out</think>\n[]"


class WorkflowEnv(gymnasium.Env):
    """One episode = one window. See the module docstring for the protocol.

    ``series``: the pool (every window of every series); ``workflow``: the roles (the
    detector role is the agent, so only its upstream roles and evaluator are used);
    ``role_config``: what the cache key records about the roles; ``reward_config``: an
    ``rl.rewards.RewardConfig`` (default: all terms, default weights).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        series: list[Series],
        workflow: Workflow,
        *,
        role_config: dict[str, Any] | None = None,
        cache_dir: str | Path | None = None,
        reward_config: Any = None,
        evaluate: bool = True,
        max_refinements: int = 1,
        anomalous_only: bool = False,
        trajectories: str | Path | None = None,
    ) -> None:
        if not series:
            raise DataError("WorkflowEnv needs at least one series")
        self.workflow = workflow
        self.reward_config = reward_config
        self.evaluate = evaluate and workflow.roles.evaluator is not None
        self.max_refinements = int(max_refinements)
        self.trajectories = trajectories
        self.cache = UpstreamCache(cache_dir, role_config or {}) if cache_dir is not None else None
        self.pool: list[WindowTask] = []
        for s in series:
            tasks = workflow.tasks(s)
            if anomalous_only:
                tasks = [t for t in tasks if t.window.has_anomalies]
            self.pool += tasks
        if not self.pool:
            raise DataError("the window pool is empty (no series, or no anomalous window with anomalous_only)")
        self.observation_space = ChatMessages()
        self.action_space = AnswerText()
        self._episode: DetectorEpisode | None = None

    # ------------------------------------------------------------------ reset

    def _select(self, options: dict[str, Any]) -> WindowTask:
        """The task named by ``options`` (``series`` name, ``window`` index or ``start``) or a
        seeded draw from the pool."""
        if not options:
            return self.pool[int(self.np_random.integers(len(self.pool)))]
        tasks = self.pool
        if "series" in options:
            tasks = [t for t in tasks if t.series.name == options["series"]]
            if not tasks:
                raise KeyError(f"no series named {options['series']!r} in the pool")
        if "start" in options:
            tasks = [t for t in tasks if t.window.start == int(options["start"])]
        elif "window" in options:
            tasks = [t for t in tasks if t.window.index == int(options["window"])]
        if not tasks:
            raise KeyError(f"no window matches {options}")
        if len(tasks) > 1 and ("start" in options or "window" in options):
            raise KeyError(f"{options} matches {len(tasks)} windows; name the series too")
        return tasks[0] if len(tasks) == 1 else tasks[int(self.np_random.integers(len(tasks)))]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        episode = DetectorEpisode(
            self._select(options or {}),
            self.workflow,
            cache=self.cache,
            reward_config=self.reward_config,
            evaluate=self.evaluate,
            max_refinements=self.max_refinements,
            trajectories=self.trajectories,
        )
        self._episode = episode
        window = episode.task.window
        info = {
            "task_id": episode.task.task_id,
            "series": episode.task.series.name,
            "window": [window.start, window.end],
            "has_labels": window.labels is not None,
            "cached": episode.cached,
        }
        return episode.messages(), info

    # ------------------------------------------------------------------ step

    def step(self, action: str):
        episode = self._episode
        if episode is None or episode.done:
            raise RuntimeError("call reset() before step() (the episode is over)")
        text = action if isinstance(action, str) else str(action)
        submission = episode.submit(text)
        terms = submission.terms
        reward = float(terms.get("total", 0.0)) if terms else 0.0
        info: dict[str, Any] = {"rewards": terms, "detection": submission.detection.to_dict(), "round": submission.round}
        verdict = submission.verdict
        if verdict is not None:
            info["evaluator"] = {"needs_refinement": verdict.needs_refinement, "issues": verdict.issues}
        if submission.needs_refinement:
            obs = self.workflow.detector_messages(episode.task, feedback=verdict.feedback_text(), previous_answer=text)
            return obs, reward, False, False, info
        info["trajectory"] = episode.end()
        return [], reward, True, False, info


def make_workflow_env(
    series: list[Series],
    *,
    agent_options: dict[str, Any] | None = None,
    **env_options: Any,
) -> WorkflowEnv:
    """The env over the heuristic agent's upstream roles (``agent_options`` go to
    :func:`anomamind.envs.detectors.make_heuristic_agent`: disable, causal, window, ...)."""
    from anomamind.envs.detectors import make_heuristic_agent

    agent = make_heuristic_agent(**(agent_options or {}))
    return WorkflowEnv(series, agent.workflow, role_config=agent.role_config, **env_options)


def register_env() -> None:
    """Register ``anomamind/Workflow-v0`` with gymnasium (idempotent)."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="anomamind.envs.env:make_workflow_env")


register_env()
