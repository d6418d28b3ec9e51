"""Multi-turn GRPO over the workflow: the detector's episode as a TRL environment.

With ``rollout: environment`` in a train config, TRL's ``GRPOTrainer`` gets an
``environment_factory`` (TRL 1.16): one environment instance per rollout, whose public
methods are the tools the policy may call while it generates. Here an instance plays one
window's :class:`~anomamind.envs.episode.DetectorEpisode`:

- ``reset(**row)`` starts the episode of the prepared row's window. The upstream stages come
  from the prepare step's on-disk cache (the series are reloaded once per process from the
  data the dataset was prepared from, rl/prepare.load_source); the returned instructions
  are appended to the row's detector prompt.
- one method per configured feature tool of the registry (``environment.tools``), with the
  registry's description and parameters as its schema; calls are validated and run by the
  registry for the window, at most ``environment.max_tool_calls`` per rollout, and the
  results come back as compact one-line JSON (agents/detector_prompt.dumps).
- ``submit_answer(answer)``: the evaluator reviews the answer; when it asks for a revision
  the tool returns its feedback and the policy may submit again (at most
  ``environment.max_refinements`` times); otherwise the answer is final.

The reward is the environment's: each enabled reward term of rl/rewards.py scored on the
final answer, plus optional costs per feature-tool call and per refinement round (off by
default). Each is a reward function of TRL's signature that reads the rollout's environment
(TRL passes the instances as ``environments``), so TRL logs every term under its own name as
in single-turn training (``rewards/two_sided/mean``, ``rewards/tool_cost/mean``, ...). TRL's
``get_reward`` hook is not used: it would log one number under the class name. A rollout
that never calls ``submit_answer`` (a policy that does not use tools) is scored on its last
message, so any policy trains. Every episode is written as a JSON line (tool calls and
results, submissions, evaluator verdicts, reward terms) to ``OUTPUT_DIR/trajectories.jsonl``
(``trajectories.rankN.jsonl`` per process under a multi-process launch).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from anomamind.agents.detector_prompt import dumps
from anomamind.config import ConfigError
from anomamind.envs.episode import DetectorEpisode
from anomamind.paths import PROMPT_DIR
from anomamind.rl.rewards import RewardConfig, build_reward_functions, completion_text
from anomamind.types import DataError, ToolCall

log = logging.getLogger(__name__)

#: Cost terms the environment can add to the reward (weight 1; each value <= 0).
COST_TERMS: tuple[str, ...] = ("tool_cost", "refinement_cost")


@dataclass
class EnvironmentSection:
    """``environment:`` in a train config (read when ``rollout: environment``).

    ``tools``: registry tools the detector may call (``[]``: submit only, the "w/o detector
    tools" ablation); ``max_tool_calls``: calls allowed per rollout; ``evaluator``: review
    submissions (false: the first submission is final, "w/o evaluator in training");
    ``max_refinements``: revisions the evaluator may ask for; ``tool_call_cost`` /
    ``refinement_cost``: subtracted from the reward per call / per revision (0 = off);
    ``trajectories``: write every episode to OUTPUT_DIR/trajectories*.jsonl.
    """

    tools: list[str] = field(default_factory=lambda: ["feature_runs"])
    max_tool_calls: int = 4
    evaluator: bool = True
    max_refinements: int = 1
    tool_call_cost: float = 0.0
    refinement_cost: float = 0.0
    trajectories: bool = True

    def __post_init__(self) -> None:
        self.tools = list(self.tools or [])
        if self.max_tool_calls < 0 or self.max_refinements < 0:
            raise ConfigError("environment.max_tool_calls and environment.max_refinements must be >= 0")
        if self.tool_call_cost < 0 or self.refinement_cost < 0:
            raise ConfigError("environment costs are magnitudes (>= 0); they are subtracted from the reward")

    @property
    def max_turns(self) -> int:
        """Generation turns a rollout needs at most: every tool call and every submission in
        its own turn, plus the closing message."""
        return self.max_tool_calls + self.max_refinements + 2

    def cost_terms(self) -> list[str]:
        """The cost terms that are switched on."""
        return [name for name, cost in zip(COST_TERMS, (self.tool_call_cost, self.refinement_cost)) if cost]


# ----------------------------------------------------------------------------- windows


class PreparedWindows:
    """The workflow tasks behind a prepared dataset's rows, built once per process: the
    series are reloaded from the data the dataset was prepared from, the workflow is the
    prepare step's agent (with its evaluator when ``evaluator``), upstream results come
    from the prepare step's cache."""

    def __init__(self, prepared: str | Path, evaluator: bool = True) -> None:
        from anomamind.envs.cache import UpstreamCache
        from anomamind.rl.prepare import load_source, make_agent

        self.source = load_source(prepared)
        agent = make_agent(self.source, evaluator=evaluator)
        self.workflow = agent.workflow
        self.cache = UpstreamCache(self.source.cache_dir, agent.role_config)
        self._series: dict[str, Any] | None = None
        self._tasks: dict[tuple[str, int], Any] = {}

    def _load_series(self) -> dict[str, Any]:
        if self._series is None:
            from anomamind.envs.datasets import resolve_data

            src = self.source
            loaded = resolve_data(src.data, datasets=src.datasets, limit=src.limit, seed=src.seed)
            self._series = {s.name: s for s in loaded.series}
        return self._series

    def task(self, series: str, window_start: int) -> Any:
        """The :class:`~anomamind.agents.roles.WindowTask` of a prepared row's window."""
        key = (str(series), int(window_start))
        if key not in self._tasks:
            found = self._load_series().get(key[0])
            if found is None:
                raise DataError(f"series {key[0]!r} of the prepared dataset is not in its source data {self.source.data}")
            for task in self.workflow.tasks(found):
                self._tasks[(found.name, task.window.start)] = task
        if key not in self._tasks:
            raise DataError(f"series {key[0]!r} has no window starting at {key[1]} (window geometry changed since prepare?)")
        return self._tasks[key]


# ----------------------------------------------------------------------------- the environment


@dataclass
class EnvironmentStats:
    """Counts over the rollouts closed since the last log (one process)."""

    counts: Counter = field(default_factory=Counter)

    def record(self, episode: DetectorEpisode, submitted: bool) -> None:
        self.counts["rollouts"] += 1
        self.counts["submitted"] += int(submitted)
        self.counts["feedback"] += int(any(s.needs_refinement for s in episode.submissions))
        self.counts["refinements"] += episode.refinements
        self.counts["tool_calls"] += episode.tool_calls

    def pop_means(self) -> dict[str, float]:
        """Per-rollout means under ``environment/...`` (empty when nothing was recorded)."""
        n = self.counts.pop("rollouts", 0)
        means = {f"environment/{k}": v / n for k, v in sorted(self.counts.items())} if n else {}
        self.counts.clear()
        return means


class DetectorToolEnv:
    """A rollout's environment (see the module docstring). TRL exposes every public method
    but ``reset`` as a tool, so everything else here is private or an attribute; the
    feature-tool methods are added per run by :func:`environment_class`."""

    def __init__(self, context: "RolloutContext", trajectories: Path | None, stats: EnvironmentStats | None) -> None:
        self._context = context
        self._trajectories = trajectories
        self._stats = stats
        self.episode: DetectorEpisode | None = None
        self.submitted = False

    def reset(self, **row: Any) -> str:
        """Start the episode of the row's window; returns the instructions for the prompt."""
        if "series" not in row or "window_start" not in row:
            raise DataError("the environment needs prepared rows (columns 'series' and 'window_start')")
        self.episode = self._context.start(row, self._trajectories)
        self.submitted = False
        return self._context.instructions

    def submit_answer(self, answer: str) -> str:
        """Submit your answer for this window; the evaluator reviews it and may ask for a revision.

        Args:
            answer: your complete answer: the reasoning inside <think>...</think>, then the JSON array of anomalous intervals ([] when the window is normal).
        """
        episode = self.episode
        if episode is None or episode.done:
            return "The episode is over and your answer is final; reply without calling tools."
        self.submitted = True
        text = answer if isinstance(answer, str) else json.dumps(answer)
        submission = episode.submit(text)
        if submission.needs_refinement:
            return (
                "The evaluator reviewed your answer:\n"
                + submission.verdict.feedback_text()
                + "\nRevise the answer and call submit_answer again."
            )
        self._close()
        return "Your answer is final; reply without calling tools."

    def _run_feature_tool(self, name: str, arguments: dict[str, Any]) -> str:
        episode = self.episode
        if episode is None or episode.done:
            return dumps({"error": "the episode is over and your answer is final; reply without calling tools"})
        budget = self._context.section.max_tool_calls
        if episode.tool_calls >= budget:
            return dumps({"error": f"the tool budget of this window ({budget} calls) is spent; call submit_answer"})
        [result] = episode.run_tools([ToolCall(name, arguments)])
        return dumps({"error": result.error} if result.error else result.output)

    def _close(self, truncated: bool = False) -> None:
        """End the episode (the last submission is final), with the configured costs."""
        episode, section = self.episode, self._context.section
        costs = {}
        if section.tool_call_cost:
            costs["tool_cost"] = -section.tool_call_cost * episode.tool_calls
        if section.refinement_cost:
            costs["refinement_cost"] = -section.refinement_cost * episode.refinements
        episode.trajectory.info["answer_from"] = "submit_answer" if self.submitted else "last message"
        episode.end(costs, truncated=truncated)
        if self._stats is not None:
            self._stats.record(episode, self.submitted)


def _tool_method(spec: Any) -> Callable[..., str]:
    """A method calling registry tool ``spec`` (a RegisteredTool), with a signature, type
    hints and Google-style docstring from the registry, which is what TRL and
    transformers turn into the tool's schema. Arguments are checked by the registry."""
    name = spec.name

    def call(self: DetectorToolEnv, **arguments: Any) -> str:
        return self._run_feature_tool(name, arguments)

    described = spec.schema["function"]
    properties = described["parameters"]["properties"]
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    hints: dict[str, Any] = {}
    arg_lines = []
    for pname, param in spec.params.items():
        hint: Any = Literal[param.choices] if param.choices else param.py_type
        if param.optional:
            hint = typing.Optional[hint]
        hints[pname] = hint
        default = inspect.Parameter.empty if param.required else param.default
        parameters.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint))
        notes = [f"{k} {properties[pname][k]}" for k in ("default", "minimum", "maximum") if k in properties[pname]]
        note = f" ({', '.join(notes)})" if notes else ""
        arg_lines.append(f"    {pname}: {properties[pname]['description']}{note}")
    call.__signature__ = inspect.Signature(parameters, return_annotation=str)
    call.__annotations__ = {**hints, "return": str}
    call.__name__ = call.__qualname__ = name
    call.__doc__ = described["description"] + ("\n\nArgs:\n" + "\n".join(arg_lines) if arg_lines else "")
    return call


def environment_class(tools: list[Any]) -> type[DetectorToolEnv]:
    """:class:`DetectorToolEnv` with one method per registry tool of ``tools``."""
    return type("DetectorToolEnv", (DetectorToolEnv,), {spec.name: _tool_method(spec) for spec in tools})


def call_environment_tool(env: DetectorToolEnv, name: str, arguments: Any) -> str:
    """Run a tool call on ``env`` the way TRL's rollout loop does (an unknown tool or bad
    arguments become an error text the model reads)."""
    method = getattr(type(env), name, None)
    if name.startswith("_") or name == "reset" or not inspect.isfunction(method):
        return str({"error": f"Tool {name} not found."})
    try:
        return str(method(env, **(arguments or {})))
    except Exception as err:  # noqa: BLE001 - as TRL: the model gets the message
        return str({"error": str(err)})


class RolloutContext:
    """What the environments of one run share: the prepared windows, the exposed tools,
    the instructions, the reward settings, where trajectories go and the statistics.

    ``prepared``: the prepared dataset folder; ``trajectories``: the JSON-lines file of the
    training episodes (None: not written).
    """

    def __init__(
        self,
        prepared: str | Path,
        section: EnvironmentSection,
        rewards: RewardConfig | None = None,
        trajectories: str | Path | None = None,
    ) -> None:
        from anomamind.tools.registry import default_registry

        registry = default_registry()
        unknown = [n for n in section.tools if n not in registry]
        if unknown:
            raise ConfigError(f"environment.tools: unknown tool(s) {unknown}; known: {registry.names()}")
        self.section = section
        self.rewards = rewards
        self.windows = PreparedWindows(prepared, evaluator=section.evaluator)
        self.trajectories = Path(trajectories) if trajectories is not None else None
        self.stats = EnvironmentStats()
        self.env_class = environment_class([registry.get(n) for n in section.tools])
        self.instructions = "\n\n" + self._instructions()

    def _instructions(self) -> str:
        section = self.section
        tools_line = ""
        if section.tools and section.max_tool_calls:
            tools_line = (
                f"Before answering you may call these tools for this window: {', '.join(section.tools)} "
                f"(at most {section.max_tool_calls} calls in all; results come back as tool messages). "
            )
        if section.evaluator and section.max_refinements:
            review_line = (
                f"The evaluator reviews it and may ask for up to {section.max_refinements} revision(s): "
                "then revise and call submit_answer again. Stop once your answer is final."
            )
        else:
            review_line = "Your first submitted answer is final."
        template = (PROMPT_DIR / "environment_tools.md").read_text().strip()
        return template.format(tools_line=tools_line, review_line=review_line)

    def new_environment(self) -> DetectorToolEnv:
        """A training rollout's environment (TRL's ``environment_factory``): its episode goes
        to the run's trajectory file and statistics."""
        return self.env_class(self, self.trajectories, self.stats)

    def detached_environment(self, trajectories: Path | None = None) -> DetectorToolEnv:
        """An environment outside training (validation, evaluation): its episode is written
        to ``trajectories`` only and never counts in the run's statistics."""
        return self.env_class(self, trajectories, None)

    def start(self, row: dict[str, Any], trajectories: Path | None) -> DetectorEpisode:
        task = self.windows.task(row["series"], row["window_start"])
        episode = DetectorEpisode(
            task,
            self.windows.workflow,
            cache=self.windows.cache,
            reward_config=self.rewards,
            evaluate=self.section.evaluator,
            max_refinements=self.section.max_refinements,
            trajectories=trajectories,
        )
        if not episode.cached and self.windows.cache.misses == 1:
            log.warning(
                "%s: not in the prepare step's upstream cache %s (moved, or the agent configuration or "
                "knowledge files changed since prepare): upstream stages run now and are stored",
                task.task_id, self.windows.cache.root,
            )
        return episode

    def tool_schemas(self) -> list[dict[str, Any]]:
        """The tools' schemas as the chat template sees them (OpenAI function format)."""
        from transformers.utils import get_json_schema

        probe = self.detached_environment()
        names = [n for n, _ in inspect.getmembers(self.env_class, inspect.isfunction) if not n.startswith("_") and n != "reset"]
        return [get_json_schema(getattr(probe, n)) for n in names]


def submission_turn(answer: str) -> dict[str, Any]:
    """The assistant turn that submits ``answer`` through ``submit_answer``."""
    call = {"type": "function", "function": {"name": "submit_answer", "arguments": {"answer": answer}}}
    return {"role": "assistant", "content": "", "tool_calls": [call]}


def environment_sft_dataset(dataset: Any, context: RolloutContext) -> Any:
    """SFT rows for a policy that will train in the environment: prompt-completion rows of
    rl/sft.sft_dataset become the rollout's prompt (instructions appended, the tools' schemas
    in a ``tools`` column, which TRL's SFTTrainer renders) and the answer submitted through
    ``submit_answer``, so the warm start teaches the submission protocol."""
    tools = json.dumps(context.tool_schemas())

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        prompt = [dict(m) for m in row["prompt"]]
        prompt[-1]["content"] = prompt[-1]["content"] + context.instructions
        return {"prompt": prompt, "completion": [submission_turn(row["completion"][0]["content"])], "tools": tools}

    return dataset.map(convert)


def trajectories_path(output_dir: str | Path) -> Path:
    """The training episodes' JSON-lines file of this process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    name = "trajectories.jsonl" if world <= 1 else f"trajectories.rank{int(os.environ.get('RANK', '0'))}.jsonl"
    return Path(output_dir) / name


# ----------------------------------------------------------------------------- rewards


def final_message_text(completion: Any) -> str:
    """The last assistant message of a multi-turn completion; reasoning that TRL's response
    parser split off (``reasoning_content``) is put back as the think block."""
    messages = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role", "assistant") == "assistant":
            content = completion_text([message])
            reasoning = message.get("reasoning_content")
            return f"<think>{reasoning}</think>\n{content}" if reasoning else content
    return ""


def finish_rollout(env: DetectorToolEnv, completion: Any) -> dict[str, float]:
    """The final reward terms of ``env``'s rollout, closing its episode first if the policy
    stopped before it ended: the last submission is final, or, when nothing was submitted,
    the last message is scored as the answer. Idempotent."""
    episode = env.episode
    if episode is None:
        raise RuntimeError("finish_rollout on an environment that was never reset")
    if not episode.done:
        if not episode.submissions:
            episode.submit(final_message_text(completion), review=False)
        env._close(truncated=True)
    return episode.trajectory.rewards


def environment_reward_functions(
    rewards: RewardConfig | None, section: EnvironmentSection
) -> tuple[list[Callable[..., list[float | None]]], list[float]]:
    """The reward terms of environment rollouts and their weights: the enabled terms of
    ``rewards`` (their configured weights) then the switched-on cost terms (weight 1)."""
    label_funcs, weights = build_reward_functions(rewards)
    names = [f.__name__ for f in label_funcs] + section.cost_terms()

    def term(name: str) -> Callable[..., list[float | None]]:
        def reward(prompts: Any, completions: list[Any], environments: list[Any] | None = None, **columns: Any):
            if environments is None:
                raise ValueError(f"reward term {name!r} reads TRL's environments (rollout: environment only)")
            return [finish_rollout(env, c).get(name) for env, c in zip(environments, completions)]

        reward.__name__ = name
        return reward

    return [term(n) for n in names], weights + [1.0] * len(section.cost_terms())


def make_stats_callback(context: RolloutContext) -> Any:
    """A ``TrainerCallback`` adding the rollouts' per-rollout means (submitted through the
    tool, got evaluator feedback, refinements, tool calls) to each log, as
    ``environment/...`` (this process's rollouts)."""
    from transformers import TrainerCallback

    class EnvironmentLogCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs is None or "loss" not in logs:
                return
            means = context.stats.pop_means()
            logs.update(means)
            if state.log_history:  # the trainer appended this entry before the callbacks ran
                state.log_history[-1].update(means)

    return EnvironmentLogCallback()
