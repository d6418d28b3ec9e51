"""Train one rule set per dataset from a data folder, and score it on the held-out series.

What ``anomamind rules train`` runs: load the dataset's series, split them by series
(train / validation / test, see :mod:`anomamind.rules.data`), optionally compute a base
detector's predictions for AND/OR training, run the loop, score the selected rule set on
the TEST series with the benchmark runner's detector (``rules:PATH``), and write the rule
set with its provenance. A dataset whose rule set already exists is skipped (resume), a
dataset that fails is reported and the others go on.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from anomamind.envs.loaders import load_directory
from anomamind.eval.point_metrics import point_prf
from anomamind.eval.registry import create_detector
from anomamind.rules.data import build_split, split_series
from anomamind.rules.detector import RuleSetDetector
from anomamind.rules.loop import RuleTrainConfig, train_rule_set
from anomamind.rules.proposer import Proposer
from anomamind.rules.rule import MANIFEST, save_rule_set
from anomamind.types import Series

log = logging.getLogger(__name__)

TEST_FILE_LIST = "test_files.csv"


def make_proposer(config: RuleTrainConfig, train_split, dataset: str) -> Proposer:
    """The proposer named by ``config.proposer`` (the LLM one imports its backend lazily)."""
    mode = config.combine_mode if config.combine_with else None
    if config.proposer == "offline":
        from anomamind.rules.proposer_offline import OfflineProposer

        o = config.offline
        return OfflineProposer(train_split, combine_mode=mode, beam_width=o.beam_width,
                               max_conditions=o.max_conditions, bootstrap=o.bootstrap,
                               name_prefix=dataset.lower() or "rule")
    if config.proposer == "llm":
        from anomamind.rules.proposer_llm import LLMProposer, chat_backend

        return LLMProposer(chat_backend(config.llm), train_split, config.llm, combine_mode=mode,
                           name_prefix=dataset.lower() or "rule", dataset=dataset)
    raise ValueError(f"unknown proposer {config.proposer!r}; use 'offline' or 'llm'")


def _base_predictions(spec: str, series: list[Series]) -> list[np.ndarray]:
    detector = create_detector(spec)
    return [np.asarray(detector.detect(s).pred, dtype=bool) for s in series]


def score_series(detector, series: list[Series]) -> dict[str, Any]:
    """Macro point P/R/F1 of ``detector`` over ``series`` (every series counted)."""
    rows = []
    for s in series:
        p, r, f = point_prf(s.labels, detector.detect(s).pred)
        rows.append((p, r, f))
    mean = np.mean(rows, axis=0) if rows else np.zeros(3)
    return {"n_series": len(rows), "precision": round(float(mean[0]), 4),
            "recall": round(float(mean[1]), 4), "point_f1": round(float(mean[2]), 4)}


def train_dataset(data_dir: Path, dataset: str, out_dir: Path, config: RuleTrainConfig) -> dict[str, Any]:
    """Train, test and save the rule set of one dataset; returns its summary."""
    started = time.monotonic()
    loaded = load_directory(data_dir, datasets=[dataset])
    for path, message in loaded.failures:
        log.warning("%s: skipped: %s", path, message)
    parts = split_series(loaded.series, config.split)
    if not parts["train"] or not parts["validation"]:
        raise ValueError(f"{dataset}: {len(loaded.series)} series are too few for a train/validation split")
    base = {name: None for name in parts}
    if config.combine_with:
        base = {name: _base_predictions(config.combine_with, ss) for name, ss in parts.items() if ss}
    tried: dict[int, float] = {}
    result = None
    for length in config.window_length_choices or [config.window_length]:
        run_config = dataclasses.replace(config, window_length=int(length))
        train = build_split(parts["train"], run_config.window_length, base["train"])
        validation = build_split(parts["validation"], run_config.window_length, base["validation"])
        proposer = make_proposer(run_config, train, dataset)
        attempt = train_rule_set(proposer, train, validation, run_config, dataset=dataset)
        tried[int(length)] = round(attempt.validation_f1, 4)
        log.info("%s: window length %d: validation F1 %.4f", dataset, length, attempt.validation_f1)
        if result is None or attempt.validation_f1 > result.validation_f1:
            result, proposer_report = attempt, getattr(proposer, "report", dict)()
    rule_set = result.rule_set
    rule_set.info = {
        "split": {
            "rule": "series dealt into folds by the hash of their names (eval.point_metrics.assign_folds)",
            "folds": dataclasses.asdict(config.split),
            "series": {name: sorted(s.name for s in ss) for name, ss in parts.items()},
        },
        "training": {
            "data": str(data_dir),
            "config": dataclasses.asdict(config),
            "validation_f1_of_set": round(result.validation_f1, 4),
            "validation_f1_by_window_length": tried,
            "candidates_validated": len(result.pool),
            "rejected": result.rejected,
            **({"proposer": proposer_report} if proposer_report else {}),
            "history": result.history,
            "seconds": round(time.monotonic() - started, 1),
        },
    }
    target = out_dir / dataset
    save_rule_set(rule_set, target)
    detector = RuleSetDetector(rule_set, limits=config.sandbox)
    try:
        test = score_series(detector, parts["test"]) if parts["test"] else None
    finally:
        detector.close()
    rule_set.info["test"] = test
    save_rule_set(rule_set, target)
    with open(target / TEST_FILE_LIST, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file_name"])
        writer.writerows([Path(s.source).name] for s in parts["test"] if s.source)
    return {"dataset": dataset, "rules": len(rule_set.rules), "validation_f1": round(result.validation_f1, 4),
            "test": test, "seconds": rule_set.info["training"]["seconds"], "out": str(target)}


def train_datasets(
    data_dir: str | Path, datasets: list[str], out_dir: str | Path, config: RuleTrainConfig, force: bool = False
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Train every dataset; (summaries, failures). Finished datasets are skipped unless ``force``."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    summaries, failures = [], []
    for dataset in datasets:
        manifest = out_dir / dataset / MANIFEST
        if manifest.is_file() and not force:
            log.info("%s: rule set exists at %s; skipped (use --force to retrain)", dataset, manifest.parent)
            summaries.append({"dataset": dataset, "skipped": True, "out": str(manifest.parent),
                              "test": json.loads(manifest.read_text()).get("test")})
            continue
        try:
            summaries.append(train_dataset(data_dir, dataset, out_dir, config))
        except Exception as err:  # noqa: BLE001 - one dataset's failure must not stop the others
            if getattr(err, "fatal", False):  # refused key, dead endpoint: every dataset would fail
                raise
            log.error("%s: training failed: %s", dataset, err)
            failures.append((dataset, f"{type(err).__name__}: {err}"))
    return summaries, failures
