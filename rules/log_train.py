"""Train a log rule set on one log, and score it on the log's held-out last part.

What ``anomamind logs train`` runs: read the log, split it in time order (train /
validation / test, :mod:`anomamind.rules.log_data`), optionally fit a base detector for
AND/OR training, draw CodeAD's contrastive sample from the training part, run the shared
loop (:func:`anomamind.rules.loop.train_with_task` with a
:class:`~anomamind.rules.log_task.LogTask`), score the selected rule set on the TEST part and
write it with its provenance to ``OUT/<DATASET>/``. With ``window_size_choices`` the loop
runs once per window size and the set with the best validation F1 is kept.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomamind.envs.log_loaders import LogData, load_log
from anomamind.envs.log_templates import TemplateOptions
from anomamind.envs.log_windows import LogWindowSpec
from anomamind.rules.log_data import LogPart, LogSplitSpec, split_log
from anomamind.rules.log_detector import LogRuleSetDetector, create_log_detector
from anomamind.rules.log_sampler import ContrastiveSample, SamplerOptions, contrastive_sample
from anomamind.rules.log_task import LogTask
from anomamind.rules.loop import LoopConfig, TrainResult, train_with_task
from anomamind.rules.proposer import Proposer
from anomamind.rules.rule import MANIFEST, save_rule_set

log = logging.getLogger(__name__)


@dataclass
class LogOfflineOptions:
    beam_width: int = 6
    max_conditions: int = 2
    bootstrap: float = 0.8
    max_words: int = 30  # keyword patterns screened from the training windows


@dataclass
class LogDataOptions:
    """How the log is read (kept in the manifest, so the benchmark reads it the same way)."""

    format: str = "auto"
    labels: str | None = None  # a session label file (HDFS CSV, Hadoop list); default: found next to the log
    max_lines: int | None = None
    bad_lines: str = "error"  # error | skip


@dataclass
class LogRuleTrainConfig(LoopConfig):
    """Everything ``anomamind logs train`` can be told (configs/rules/logs_*.yaml)."""

    window: LogWindowSpec = field(default_factory=LogWindowSpec)
    window_size_choices: list[float] = field(default_factory=list)  # if set: train each size, keep the best
    split: LogSplitSpec = field(default_factory=LogSplitSpec)
    data: LogDataOptions = field(default_factory=LogDataOptions)
    templates: TemplateOptions = field(default_factory=TemplateOptions)
    sampler: SamplerOptions = field(default_factory=SamplerOptions)
    offline: LogOfflineOptions = field(default_factory=LogOfflineOptions)


def read_log(path: str | Path, options: LogDataOptions) -> LogData:
    return load_log(path, options.format, labels=options.labels, max_lines=options.max_lines,
                    bad_lines=options.bad_lines)


def make_log_proposer(config: LogRuleTrainConfig, train: LogPart, sample: ContrastiveSample,
                      window: LogWindowSpec, dataset: str) -> Proposer:
    """The proposer named by ``config.proposer`` (the LLM one imports its backend lazily)."""
    mode = config.combine_mode if config.combine_with else None
    prefix = dataset.lower() or "rule"
    if config.proposer == "offline":
        from anomamind.rules.log_proposer_offline import LogOfflineProposer

        o = config.offline
        return LogOfflineProposer(train, combine_mode=mode, beam_width=o.beam_width, max_conditions=o.max_conditions,
                                  bootstrap=o.bootstrap, max_words=o.max_words, name_prefix=prefix)
    if config.proposer == "llm":
        from anomamind.rules.log_proposer_llm import LogLLMProposer
        from anomamind.rules.proposer_llm import chat_backend

        return LogLLMProposer(chat_backend(config.llm), train, sample, window, config.llm, combine_mode=mode,
                              name_prefix=prefix, dataset=dataset, max_lines_shown=config.sampler.max_lines_shown)
    raise ValueError(f"unknown proposer {config.proposer!r}; use 'offline' or 'llm'")


def attach_base(spec: str, parts: dict[str, LogPart]) -> None:
    """Fit detector ``spec`` on the training part and store its flags on every part's ``base``."""
    detector = create_log_detector(spec)
    try:
        detector.fit(parts["train"])
        for part in parts.values():
            if part.windows:
                part.base = detector.detect(part).flags.astype(bool)
    finally:
        detector.close()


def train_on_parts(parts: dict[str, LogPart], window: LogWindowSpec, config: LogRuleTrainConfig,
                   dataset: str) -> tuple[TrainResult, ContrastiveSample]:
    """One run of the loop on an existing split."""
    if config.combine_with:
        attach_base(config.combine_with, parts)
    sample = contrastive_sample(parts["train"], config.sampler, config.seed)
    proposer = make_log_proposer(config, parts["train"], sample, window, dataset)
    mode = config.combine_mode if config.combine_with else None
    task = LogTask(parts["train"], parts["validation"], sample, window, mode, config.sampler.max_lines_shown)
    return train_with_task(proposer, task, config, dataset), sample


def train_log_rules(data_path: str | Path, out_dir: str | Path, config: LogRuleTrainConfig,
                    force: bool = False) -> dict[str, Any]:
    """Train, test and save the rule set of one log into ``out_dir/<DATASET>``; returns a summary.
    An existing rule set is kept (resume) unless ``force``."""
    started = time.monotonic()
    data = read_log(data_path, config.data)
    target = Path(out_dir) / data.dataset
    if (target / MANIFEST).is_file() and not force:
        log.info("%s: rule set exists at %s; skipped (use --force to retrain)", data.dataset, target)
        return {"dataset": data.dataset, "skipped": True, "out": str(target)}
    sizes = config.window_size_choices or [config.window.size]
    tried: dict[str, float] = {}
    best = None
    for size in sizes:
        window = dataclasses.replace(config.window, size=size)
        parts = split_log(data, window, config.split, config.templates)
        result, sample = train_on_parts(parts, window, config, data.dataset)
        tried[f"{size:g}"] = round(result.validation_f1, 4)
        log.info("%s: %s: validation F1 %.4f", data.dataset, window.describe(), result.validation_f1)
        if best is None or result.validation_f1 > best[0].validation_f1:
            best = (result, sample, parts, window)
    result, sample, parts, window = best
    rule_set = result.rule_set
    rule_set.info = {
        "split": {
            "rule": "time order: the first share of the lines trains, the next validates, the rest tests",
            "shares": dataclasses.asdict(config.split),
            "parts": {name: {"line_range": [p.start, p.end], **p.summary()} for name, p in parts.items()},
        },
        "training": {
            "data": str(data_path),
            "config": dataclasses.asdict(config),
            "validation_f1_of_set": round(result.validation_f1, 4),
            "validation_f1_by_window_size": tried,
            "contrastive_sample": {"windows": len(sample.windows), "anchors": len(sample.pairs),
                                   "clusters": int(sample.clusters.max(initial=0))},
            "candidates_validated": len(result.pool),
            "rejected": result.rejected,
            "history": result.history,
            "seconds": round(time.monotonic() - started, 1),
        },
    }
    save_rule_set(rule_set, target)
    detector = LogRuleSetDetector(rule_set, limits=config.sandbox, name=f"rules:{target}")
    try:
        detector.fit(parts["train"])
        prediction = detector.detect(parts["test"]) if parts["test"].windows else None
    finally:
        detector.close()
    test = None
    if prediction is not None:
        test = {k: round(v, 4) if isinstance(v, float) else v for k, v in parts["test"].scores(prediction.flags).items()}
        if prediction.info.get("rule_errors"):
            test["rule_errors"] = prediction.info["rule_errors"]
    rule_set.info["test"] = test
    save_rule_set(rule_set, target)
    return {"dataset": data.dataset, "rules": len(rule_set.rules), "window": window.describe(),
            "validation_f1": round(result.validation_f1, 4), "test": test,
            "seconds": rule_set.info["training"]["seconds"], "out": str(target)}
