"""The agentic workflow as benchmark detectors: ``heuristic-agent`` and ``llm-agent``.

Both wrap a :class:`~anomamind.envs.workflow.Workflow`; they differ in the roles. Options
are the ablation switches of the paper (``disable`` ⊂ feature_extraction,
knowledge_memory, localization; ``evaluator=False``), the window geometry and the
preprocessing mode, so ``anomamind bench --detector heuristic-agent --option ...`` can run
every row of the ablation table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from anomamind.agents.heuristic import DetectionSettings, make_heuristic_roles
from anomamind.tools.features_profile import FeatureProfile, series_profile
from anomamind.tools.registry import TaskTools, ToolRegistry
from anomamind.agents.roles import Roles
from anomamind.config import ConfigError, load_config, to_dict
from anomamind.envs.workflow import SeriesOutcome, Workflow, WorkflowConfig
from anomamind.eval.registry import SeriesPrediction
from anomamind.paths import CONFIG_DIR, PROMPT_DIR
from anomamind.types import Series

DEFAULT_HEURISTIC_CONFIG = CONFIG_DIR / "agents" / "heuristic.yaml"


@dataclass
class HeuristicAgentConfig:
    """configs/agents/heuristic.yaml: the workflow and the roles. The per-dataset detection
    settings live in the knowledge memory (``heuristic_detector`` in
    configs/knowledge/<dataset>.yaml; generic.yaml for unknown datasets and for the
    knowledge-memory ablation); ``knowledge: {DATASET: {thresholds: ..., ...}}`` here only
    overrides them, key by key, for experiments (empty by default)."""

    window: int = 100
    stride: int = 100
    causal: bool = False
    max_refinements: int = 1
    max_tool_rounds: int = 2
    plot: bool = False
    detector_prompt: str = "compact"
    locator: dict[str, Any] = field(default_factory=dict)
    knowledge: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: A knowledge directory used instead of configs/knowledge (e.g. one derived without a
    #: dataset, for the leave-one-dataset-out benchmark), and a user's own dataset entries
    #: (YAML files, the schema of configs/knowledge/<dataset>.yaml) added to it.
    knowledge_dir: str | None = None
    knowledge_files: list[str] = field(default_factory=list)


class HeuristicKnowledge:
    """The knowledge memory's detection settings per dataset (tools/knowledge.py,
    ``KnowledgeMemory.detector_settings``: the generic entry overlaid with the dataset's);
    ``defaults`` are the generic settings (knowledge memory off). A dataset without an
    entry of its own gets ``label_free``: the generic settings overlaid with generic.yaml's
    ``label_free_detector`` (thresholds calibrated on each series at a false-alarm rate,
    labelling convention from the series' period)."""

    def __init__(self, overrides: dict[str, dict[str, Any]] | None = None, memory: Any = None) -> None:
        if memory is None:
            from anomamind.tools.knowledge import default_memory

            memory = default_memory()
        self.memory = memory
        self.overrides = {str(k).upper(): dict(v or {}) for k, v in (overrides or {}).items()}
        self._settings: dict[str, DetectionSettings] = {}
        self.defaults = self.settings(None)
        label_free = {**memory.detector_settings(None), **memory.detector_settings(None, "label_free_detector")}
        try:
            self.label_free = DetectionSettings.from_dict(label_free)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"label_free_detector settings of the generic knowledge entry: {err}") from err

    def settings(self, dataset: str | None) -> DetectionSettings:
        """The detection settings of ``dataset`` (None: the generic ones), cached."""
        name = "" if dataset is None else str(dataset).upper()
        if name not in self._settings:
            data = {**self.memory.detector_settings(dataset), **self.overrides.get(name, {})}
            try:
                self._settings[name] = DetectionSettings.from_dict(data)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"heuristic detector settings for {dataset or 'generic'!r}: {err}") from err
        return self._settings[name]

    def __call__(self, series: Series) -> DetectionSettings:
        if not self.memory.knows(series.dataset) and str(series.dataset).upper() not in self.overrides:
            return self.label_free
        settings = self.settings(series.dataset)
        return replace(settings, description=self._summary(series) or settings.description)

    def _summary(self, series: Series) -> str:
        """The memory's description and typical types of the series' dataset, for the plan
        text the detector reads."""
        entry = self.memory.for_series(series.dataset, series.domain)
        first_sentence = entry.description.split(". ")[0].rstrip(".")
        return f"{first_sentence}; typical types: {', '.join(entry.typical_types)}"


class WorkflowDetector:
    """A SeriesDetector over a workflow; ``run`` also returns the trajectories.

    ``startup`` checks what the roles depend on (the LLM agent's servers) before any
    window runs; commands call :meth:`check` so a dead endpoint or refused credentials
    stop them at once with one line."""

    def __init__(
        self,
        name: str,
        workflow: Workflow,
        trajectories: str | Path | None = None,
        role_config: dict[str, Any] | None = None,
        startup: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.workflow = workflow
        self.trajectories = trajectories
        #: What identifies the upstream roles' behaviour (the env's cache key uses it).
        self.role_config = role_config or {}
        self._startup = startup

    def check(self) -> None:
        """The start-up checks (nothing for the heuristic agent); raises on fatal problems."""
        if self._startup is not None:
            self._startup()

    def run(self, series: Series, keep_prompts: bool = True) -> SeriesOutcome:
        """The prediction and every window's trajectory (``keep_prompts=False``: without the
        detector prompts when the detector does not read them)."""
        return self.workflow.run_series(series, self.trajectories, keep_prompts=keep_prompts)

    def detect(self, series: Series) -> SeriesPrediction:
        """The prediction only: detector prompts are rendered only when the detector reads
        them or trajectories are written."""
        return self.workflow.run_series(series, self.trajectories, keep_prompts=self.trajectories is not None).prediction


def heuristic_context(series: Series, causal: bool) -> FeatureProfile:
    """The heuristic tools' series-level context: the series' cached feature profile, the
    same object the ``feature_runs`` tool reads (in causal mode the period is estimated on
    the training prefix, and scales use at least the training prefix)."""
    return series_profile(series.values, causal, series.train_end)


def workflow_tools(config: WorkflowConfig) -> TaskTools:
    """The toolbox of both agents: the shared tool registry in the workflow's calling
    convention, with the tool groups of the config's ablations switched off (what the LLM
    roles are shown and what every role's calls run through)."""
    return TaskTools(ToolRegistry.default(disabled_groups=config.disable))


def load_heuristic_config(config: str | Path | None = None, overrides: list[str] | None = None) -> HeuristicAgentConfig:
    return load_config(HeuristicAgentConfig, config or DEFAULT_HEURISTIC_CONFIG, overrides)


def _workflow_config(cfg: Any, disable: Any, window: int | None, stride: int | None, causal: bool | None,
                     detector_prompt: str | None = None) -> WorkflowConfig:
    if isinstance(disable, str):
        disable = [d for d in disable.split(",") if d]
    return WorkflowConfig(
        window=int(window or cfg.window),
        stride=int(stride or (window if window and not stride else cfg.stride)),
        causal=bool(cfg.causal if causal is None else causal),
        disable=tuple(disable or ()),
        max_refinements=int(cfg.max_refinements),
        detector_prompt=str(detector_prompt or cfg.detector_prompt),
    )


def files_digest(folder: Path, pattern: str) -> str:
    """Hash of the files an agent reads at run time (knowledge YAML, prompts), for its role
    configuration: the upstream cache must not serve results computed from older files."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob(pattern)):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def make_heuristic_agent(
    disable: list[str] | tuple[str, ...] | str = (),
    evaluator: bool = True,
    window: int | None = None,
    stride: int | None = None,
    causal: bool | None = None,
    plot: bool | None = None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    trajectories: str | Path | None = None,
    detector_prompt: str | None = None,
) -> WorkflowDetector:
    """The heuristic agent. ``disable`` and ``evaluator=False`` are the ablations; window,
    stride, causal, plot and detector_prompt (compact | full) override the config file
    (configs/agents/heuristic.yaml)."""
    cfg = load_heuristic_config(config, overrides)
    memory, knowledge_digest = knowledge_memory(cfg)
    knowledge = HeuristicKnowledge(cfg.knowledge, memory)
    roles = make_heuristic_roles(
        knowledge.defaults,
        evaluator=evaluator,
        plot=cfg.plot if plot is None else bool(plot),
        max_rounds=cfg.max_tool_rounds,
        locator=cfg.locator,
    )
    wf_config = _workflow_config(cfg, disable, window, stride, causal, detector_prompt)
    workflow = Workflow(
        roles,
        workflow_tools(wf_config),
        context_factory=heuristic_context,
        knowledge=knowledge,
        config=wf_config,
    )
    role_config = {
        "agent": "heuristic",
        "config": to_dict(cfg),
        "knowledge": knowledge_digest,
        "workflow": to_dict(workflow.config),
    }
    return WorkflowDetector("heuristic-agent", workflow, trajectories, role_config)


def knowledge_memory(cfg: HeuristicAgentConfig) -> tuple[Any, str]:
    """The knowledge memory the config names (configs/knowledge unless ``knowledge_dir``,
    plus ``knowledge_files``) and a digest of the files it was read from."""
    from anomamind.tools.knowledge import KNOWLEDGE_DIR, KnowledgeError, KnowledgeMemory, default_memory

    folder = Path(cfg.knowledge_dir).expanduser() if cfg.knowledge_dir else KNOWLEDGE_DIR
    extra = [Path(f).expanduser() for f in cfg.knowledge_files]
    digest = files_digest(folder, "*.yaml")
    if not cfg.knowledge_dir and not extra:
        return default_memory(), digest
    try:
        memory = KnowledgeMemory.load(folder, extra)
    except KnowledgeError as err:
        raise ConfigError(str(err)) from err
    for path in extra:
        digest = hashlib.sha256((digest + path.name).encode() + path.read_bytes()).hexdigest()[:16]
    return memory, digest


def make_llm_agent(
    disable: list[str] | tuple[str, ...] | str = (),
    evaluator: bool = True,
    window: int | None = None,
    stride: int | None = None,
    causal: bool | None = None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    trajectories: str | Path | None = None,
    detector_prompt: str | None = None,
) -> WorkflowDetector:
    """The workflow with LLM roles (agents/llm_roles.py: ``make_llm_roles(config, overrides,
    evaluator=...)``) over the same tools, context and knowledge as the heuristic agent; the
    planner is shown the catalogue of every enabled tool of the registry, the actor their
    schemas. A series' windows run concurrently, up to the largest ``max_concurrency`` of
    the roles' HTTP backends (each backend caps its own requests)."""
    try:
        from anomamind.agents.llm_roles import check_backends, load_llm_config, make_llm_roles, role_backends
    except ImportError as err:
        raise ImportError(f"the LLM roles are not available: {err}") from err
    cfg = load_heuristic_config(None)
    wf_config = _workflow_config(cfg, disable, window, stride, causal, detector_prompt)
    tools = workflow_tools(wf_config)
    roles: Roles = make_llm_roles(config, overrides, evaluator=evaluator, tool_schemas=tools.schemas())
    concurrency = max([int(getattr(b, "max_concurrency", 1)) for b in role_backends(roles)] or [1])
    workflow = Workflow(
        roles,
        tools,
        context_factory=heuristic_context,
        knowledge=HeuristicKnowledge(cfg.knowledge),
        config=wf_config,
        concurrency=concurrency,
    )
    role_config = {
        "agent": "llm",
        "config": to_dict(load_llm_config(config, overrides)),  # contents, not the path: edits invalidate caches
        "prompts": files_digest(PROMPT_DIR, "*.md"),
        "knowledge": files_digest(CONFIG_DIR / "knowledge", "*.yaml"),
        "workflow": to_dict(workflow.config),
    }
    localization = "localization" not in wf_config.disable
    startup = lambda: check_backends(roles, localization=localization)  # noqa: E731
    return WorkflowDetector("llm-agent", workflow, trajectories, role_config, startup)
