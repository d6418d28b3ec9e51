"""Training data for the detector: one row per window, the upstream stages run once.

``anomamind prepare`` loads series (envs/datasets.resolve_data), runs the workflow's
upstream stages (locate -> plan -> act; heuristic roles by default, LLM roles with an LLM
agent config) once per selected window through the on-disk upstream cache (so an
interrupted run resumes without recomputing, and GRPO sees identical prompts), and stores
a Hugging Face ``DatasetDict`` (``train`` / ``validation``; no ``validation`` split when
no series is held out, e.g. one series per dataset) with these columns:

- ``prompt``: the detector's chat messages (agents/detector_prompt.py), what GRPO samples;
- ``series``, ``dataset``, ``window_start``, ``window_end`` (``[start, end)``), ``labels``
  (0/1 per window point), ``has_anomaly``;
- ``evidence``: the ranges the tools flagged (JSON), read by the rule_matching reward;
- ``heuristic_answer``: the heuristic detector's answer for the window, the SFT target
  (in the compact answer format, without explanations, when the prompts are compact).

The prompt style (``compact`` or ``full``, agents/detector_prompt.py) is the agent
config's ``detector_prompt`` unless ``PrepareConfig.detector_prompt`` overrides it; it is
recorded in ``OUT/summary.json``, and training carries it into the trained model's folder
so ``checkpoint:`` renders the prompts the model was trained on.

Windows: every window with an anomaly is kept, plus ``normal_ratio`` normal windows per
anomalous one, drawn with the seed from the same series. The split is by series (per
dataset, ``val_fraction`` of its series go to validation), never windows of one series on
both sides. A window whose upstream fails is recorded in the summary and skipped; a fatal
backend error (refused credentials, an endpoint that does not answer) stops the run. With
LLM upstream roles several windows run at once (the agent's window concurrency).

A series without labels still gives training rows (all its windows, up to
``max_windows_per_series``), with ``labels`` and ``has_anomaly`` null: the label-based
rewards (two_sided, false_positive) skip them, format_reward and rule_matching apply, and
the heuristic answer is an SFT target. Validation needs labels, so such series go to train.
"""

from __future__ import annotations

import json
import logging
import math
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anomamind.types import DataError, Series

log = logging.getLogger(__name__)

#: Columns of a prepared split, in order.
COLUMNS: tuple[str, ...] = (
    "prompt", "series", "dataset", "window_start", "window_end", "labels", "has_anomaly",
    "evidence", "heuristic_answer",
)


@dataclass
class PrepareConfig:
    """What ``anomamind prepare`` does; see the module docstring.

    ``agents`` is a heuristic agent config (configs/agents/heuristic.yaml, the default) or
    ``llm:PATH`` for LLM upstream roles (configs/agents/llm*.yaml); ``agent_options`` are
    that agent's options as ``--set`` gives them (ablations such as
    ``{"disable": ["localization"]}``, or overrides of its config file). ``limit`` keeps the
    first K series of each dataset; ``max_windows_per_series`` caps the anomalous windows
    kept per series (normal ones follow ``normal_ratio``).
    """

    data: str
    out: str
    datasets: list[str] | None = None
    agents: str | None = None
    normal_ratio: float = 1.0
    val_fraction: float = 0.2
    limit: int | None = None
    max_windows_per_series: int | None = None
    window: int | None = None
    stride: int | None = None
    seed: int = 0
    cache_dir: str | None = None
    progress: bool = True
    agent_options: dict[str, Any] = field(default_factory=dict)
    detector_prompt: str | None = None

    def __post_init__(self) -> None:
        if self.normal_ratio < 0:
            raise ValueError(f"--normal-ratio must be >= 0 (got {self.normal_ratio})")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"--val-fraction must be in [0, 1) (got {self.val_fraction})")


def split_series_names(series: list[Series], val_fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """Series names for train and validation, per dataset (each dataset with at least two
    series gives at least one to validation when ``val_fraction > 0``)."""
    rng = np.random.default_rng(seed)
    train, val = set(), set()
    by_dataset: dict[str, list[str]] = {}
    for s in series:
        by_dataset.setdefault(s.dataset, []).append(s.name)
    for dataset in sorted(by_dataset):
        names = sorted(set(by_dataset[dataset]))
        rng.shuffle(names)
        n_val = int(round(val_fraction * len(names)))
        if val_fraction > 0 and len(names) >= 2:
            n_val = min(max(n_val, 1), len(names) - 1)
        else:
            n_val = 0
        val.update(names[:n_val])
        train.update(names[n_val:])
    return train, val


def select_windows(tasks: list[Any], normal_ratio: float, max_anomalous: int | None, rng: np.random.Generator) -> list[Any]:
    """Anomalous windows (at most ``max_anomalous``) plus ``normal_ratio`` normal windows per
    anomalous one (at least one normal window when the series has anomalies and the ratio is
    positive), in window order."""
    anomalous = [t for t in tasks if t.window.has_anomalies]
    normal = [t for t in tasks if not t.window.has_anomalies]
    if max_anomalous is not None and len(anomalous) > max_anomalous:
        anomalous = [anomalous[i] for i in sorted(rng.choice(len(anomalous), max_anomalous, replace=False))]
    n_normal = min(len(normal), math.ceil(normal_ratio * max(len(anomalous), 1)) if normal_ratio > 0 else 0)
    picked = [normal[i] for i in sorted(rng.choice(len(normal), n_normal, replace=False))] if n_normal else []
    return sorted(anomalous + picked, key=lambda t: t.window.start)


def make_agent(cfg: PrepareConfig, evaluator: bool = False):
    """The agent whose upstream roles prepare the windows (``evaluator``: with its evaluator,
    as the multi-turn training environment needs; the upstream cache key is the same)."""
    from anomamind.eval.registry import create_detector

    options = {"window": cfg.window, "stride": cfg.stride, "evaluator": evaluator, **cfg.agent_options}
    if cfg.detector_prompt is not None:
        options["detector_prompt"] = cfg.detector_prompt
    if cfg.agents and cfg.agents.startswith("llm:"):
        return create_detector("llm-agent", config=cfg.agents[4:], **options)
    return create_detector("heuristic-agent", config=cfg.agents, **options)


def source_record(cfg: PrepareConfig, cache_dir: Path) -> dict[str, Any]:
    """What rebuilds the windows of a prepared dataset (data spec, agents and their options,
    geometry, prompt style, cache), with paths made absolute: the training environment
    reloads the series from it."""
    data = Path(cfg.data).expanduser()
    return {
        "data": str(data.resolve()) if data.exists() else cfg.data,
        "datasets": cfg.datasets,
        "limit": cfg.limit,
        "seed": cfg.seed,
        "agents": cfg.agents,
        "agent_options": cfg.agent_options,
        "window": cfg.window,
        "stride": cfg.stride,
        "detector_prompt": cfg.detector_prompt,
        "cache_dir": str(Path(cache_dir).resolve()),
    }


def load_source(prepared: str | Path) -> PrepareConfig:
    """The :class:`PrepareConfig` that made the dataset at ``prepared`` (its summary's
    ``source``), pointing at the same data and upstream cache."""
    path = Path(prepared) / "summary.json"
    try:
        source = json.loads(path.read_text())["source"]
    except (OSError, ValueError, KeyError) as err:
        raise DataError(
            f"{path}: no 'source' record ({type(err).__name__}: {err}); the dataset was prepared "
            "by an older version: run `anomamind prepare` again"
        ) from err
    return PrepareConfig(out=str(prepared), progress=False, **source)


def _row(task: Any, workflow: Any, teacher: Any) -> dict[str, Any]:
    from anomamind.agents.detector_prompt import compact_answer
    from anomamind.envs.episode import evidence_candidates

    messages = workflow.detector_messages(task)
    try:
        answer, _ = teacher.detect(task, messages)
    except Exception as err:  # LLM upstream evidence the heuristic cannot read
        log.warning("%s: no heuristic answer (%s)", task.task_id, err)
        answer = ""
    w = task.window
    if answer and workflow.config.detector_prompt == "compact":
        answer = compact_answer(answer, w.start, w.end)
    return {
        "prompt": messages,
        "series": task.series.name,
        "dataset": task.series.dataset,
        "window_start": int(w.start),
        "window_end": int(w.end),
        "labels": [int(v) for v in w.labels] if w.labels is not None else None,
        "has_anomaly": bool(w.has_anomalies) if w.labels is not None else None,
        "evidence": evidence_candidates(task),
        "heuristic_answer": answer,
    }


def prepare_dataset(cfg: PrepareConfig) -> dict[str, Any]:
    """Build and save the prepared dataset; returns the summary (also OUT/summary.json)."""
    from datasets import Dataset, DatasetDict
    from tqdm.auto import tqdm

    from anomamind.agents.heuristic import HeuristicDetector
    from anomamind.envs.cache import UpstreamCache
    from anomamind.envs.datasets import resolve_data

    out = Path(cfg.out)
    loaded = resolve_data(cfg.data, datasets=cfg.datasets, limit=cfg.limit, seed=cfg.seed)
    series = loaded.series
    if not series:
        raise DataError(f"{cfg.data}: no series to prepare")
    unlabelled = sorted(s.name for s in series if s.labels is None)
    if unlabelled:
        log.warning(
            "%d series without labels (%s): their windows get no label-based rewards (two_sided, "
            "false_positive) and go to train only", len(unlabelled), ", ".join(unlabelled[:5]),
        )
    agent = make_agent(cfg)
    agent.check()  # LLM roles: their servers answer, serve the model, take the credentials
    workflow = agent.workflow
    cache = UpstreamCache(cfg.cache_dir or out / "upstream_cache", agent.role_config)
    teacher = HeuristicDetector()
    _, val_names = split_series_names([s for s in series if s.labels is not None], cfg.val_fraction, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "validation": []}
    failures: list[dict[str, str]] = [{"source": p, "error": e} for p, e in loaded.failures]
    tasks = []
    for s in sorted(series, key=lambda s: (s.dataset, s.name)):
        if s.labels is None:
            tasks += workflow.tasks(s)[: cfg.max_windows_per_series]
        else:
            tasks += select_windows(workflow.tasks(s), cfg.normal_ratio, cfg.max_windows_per_series, rng)

    def prepare_one(task: Any) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
        try:
            upstream = cache.load(task)
            if upstream is None:
                upstream = workflow.upstream(task)
                cache.store(task, upstream)
            task.upstream.update(upstream)
            return _row(task, workflow, teacher), None
        except Exception as err:  # one bad window must not stop the batch
            if getattr(err, "fatal", False):  # refused key, dead endpoint: every window would fail
                raise
            log.debug(traceback.format_exc())
            return None, {"source": task.task_id, "error": f"{type(err).__name__}: {err}"}
        finally:
            task.upstream.clear()

    # LLM upstream roles: several windows at once, up to the workflow's concurrency
    with ThreadPoolExecutor(max_workers=max(1, workflow.concurrency)) as pool:
        done = pool.map(prepare_one, tasks)
        for task, (row, failure) in tqdm(zip(tasks, done), total=len(tasks), desc="prepare", unit="win",
                                         disable=not cfg.progress):
            if failure is not None:
                failures.append(failure)
            else:
                rows["validation" if task.series.name in val_names else "train"].append(row)
    if not rows["train"]:
        raise DataError(f"{cfg.data}: no training window could be prepared ({len(failures)} failures)")
    train = Dataset.from_list(rows["train"])
    splits = DatasetDict(train=train)
    if rows["validation"]:  # one series per dataset holds nothing out: no validation split then
        splits["validation"] = Dataset.from_list(rows["validation"], features=train.features)
    splits.save_to_disk(str(out))
    summary = {
        "data": cfg.data,
        "datasets": sorted({s.dataset for s in series}),
        "agents": cfg.agents or "heuristic (configs/agents/heuristic.yaml)",
        "detector_prompt": workflow.config.detector_prompt,
        "agent_options": cfg.agent_options,
        "normal_ratio": cfg.normal_ratio,
        "val_fraction": cfg.val_fraction,
        "seed": cfg.seed,
        "splits": {
            name: {
                "windows": len(r),
                "anomalous_windows": sum(bool(x["has_anomaly"]) for x in r),
                "unlabelled_windows": sum(x["labels"] is None for x in r),
                "series": sorted({x["series"] for x in r}),
            }
            for name, r in rows.items()
        },
        "upstream_cache": {"dir": str(cache.root), "hits": cache.hits, "misses": cache.misses},
        "failures": failures,
        "source": source_record(cfg, cache.root),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
