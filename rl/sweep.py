"""Ablation sweeps: run variants of a base configuration and tabulate them like the paper.

A sweep file (configs/sweeps/*.yaml) has a ``base`` section and a list of ``variants``;
each variant is a (deep) override of the base. Two kinds of variant exist:

- ``inference``: runs the benchmark runner (eval/bench.py) with one detector and its
  options (e.g. the heuristic agent with ``disable: [feature_extraction]``);
- ``train``: trains a detector with the training entry point (rl/train.py) using the
  variant's overrides, then benchmarks the resulting checkpoint (``checkpoint:DIR``, with
  the options in ``train.eval_options``). An
  optional ``prepare`` section (fields of rl/prepare.PrepareConfig) builds the training
  windows once per sweep and points the training config's ``data.path`` at them.

Every variant gets its own directory holding its resolved config and results; a variant
whose ``result.json`` exists is skipped on a rerun; a failing variant is recorded in the
table with its error and the sweep goes on.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from anomamind.atomic import atomic_write_text
from anomamind.config import ConfigError, read_yaml

log = logging.getLogger(__name__)

VARIANT_KINDS = ("inference", "train")


@dataclass
class Variant:
    """One row of the sweep table: a name and its fully resolved settings."""

    name: str
    settings: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.settings.get("kind", "inference")

    @property
    def slug(self) -> str:
        keep = [c if c.isalnum() or c in "-_." else "_" for c in self.name.strip()]
        return "".join(keep).strip("_") or "variant"


@dataclass
class Sweep:
    """A parsed sweep file."""

    name: str
    mirrors: str
    metrics: list[str]
    variants: list[Variant]
    source: str = ""
    datasets: list[str] = field(default_factory=list)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``; nested mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_sweep(path: str | Path, overrides: dict[str, Any] | None = None) -> Sweep:
    """Read a sweep file; ``overrides`` (e.g. ``{"data": DIR}``) apply to every variant."""
    raw = read_yaml(path)
    base = raw.get("base", {})
    if not isinstance(base, dict):
        raise ConfigError(f"{path}: 'base' must be a mapping")
    if overrides:
        base = deep_merge(base, overrides)
    items = raw.get("variants")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: 'variants' must be a non-empty list")
    variants, seen = [], set()
    for k, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"{path}: variant {k} needs a 'name'")
        settings = deep_merge(base, {key: v for key, v in item.items() if key != "name"})
        kind = settings.get("kind", "inference")
        if kind not in VARIANT_KINDS:
            raise ConfigError(f"{path}: variant {item['name']!r} has kind {kind!r}; use one of {VARIANT_KINDS}")
        variant = Variant(name=str(item["name"]), settings=settings)
        if variant.slug in seen:
            raise ConfigError(f"{path}: two variants share the name {variant.slug!r}")
        seen.add(variant.slug)
        variants.append(variant)
    return Sweep(
        name=str(raw.get("name", Path(path).stem)),
        mirrors=str(raw.get("mirrors", "")),
        metrics=list(raw.get("metrics", ["f1", "best_f1"])),
        variants=variants,
        source=str(path),
        datasets=list(base.get("datasets") or []),
    )


def _load_series(settings: dict[str, Any]):
    from anomamind.envs.datasets import resolve_data

    if not settings.get("data"):
        raise ConfigError("the sweep names no data: give base.data in the file or --data on the command line")
    loaded = resolve_data(
        str(settings["data"]),
        datasets=settings.get("datasets"),
        limit=settings.get("limit"),
        seed=int(settings.get("seed", 0)),
    )
    for path, message in loaded.failures:
        log.warning("skipped %s: %s", path, message)
    if not loaded.series:
        raise ConfigError(f"no series loaded from {settings.get('data')!r}")
    return loaded.series


def _run_inference(settings: dict[str, Any], out_dir: Path, detector: str, options: dict[str, Any]) -> "Any":
    """The variant's benchmark summary; a detector that failed on every series fails the
    variant (so it is not taken for a result, and is run again next time)."""
    import pandas as pd

    from anomamind.eval.bench import failed_everywhere, run_benchmark

    summary = run_benchmark(
        _load_series(settings),
        [detector],
        out_dir / "bench",
        workers=int(settings.get("workers", 1)),
        detector_options={detector: options} if options else None,
        sample_plots=int(settings.get("sample_plots", 2)),
        progress=bool(settings.get("progress", True)),
    )
    failed = failed_everywhere(pd.read_csv(out_dir / "bench" / "per_series.csv", keep_default_na=False))
    if failed:
        raise RuntimeError(f"detector {detector!r} failed on every series: {failed[detector]}")
    return summary


def _prepared_data(prepare: dict[str, Any], root: Path) -> Path:
    """Prepare the training windows once per distinct ``prepare`` section; reruns reuse them."""
    from anomamind.rl.prepare import PrepareConfig, prepare_dataset

    key = hashlib.sha256(json.dumps(prepare, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = root / "prepared" / key
    if not (path / "dataset_dict.json").is_file():
        prepare_dataset(PrepareConfig(**{"progress": False, **prepare, "out": str(path)}))
    return path


def _run_training(settings: dict[str, Any], out_dir: Path) -> tuple[str, dict[str, Any]]:
    from anomamind.rl.train import train_from_config

    train = settings.get("train") or {}
    if "config" not in train:
        raise ConfigError("a train variant needs train.config (a configs/train/*.yaml file)")
    overrides = list(train.get("overrides") or [])
    if settings.get("prepare"):
        overrides.append(f"data.path={_prepared_data(settings['prepare'], out_dir.parent)}")
    train_dir = out_dir / "train"
    metrics = train_from_config(train["config"], overrides=overrides, output_dir=str(train_dir))
    checkpoint = (metrics or {}).get("checkpoint") or str(train_dir)
    return checkpoint, metrics or {}


def run_variant(variant: Variant, out_dir: Path) -> dict[str, Any]:
    """Run one variant into ``out_dir``; returns its result record (also written to disk)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(yaml.safe_dump({"name": variant.name, **variant.settings}, sort_keys=False))
    started = time.time()
    record: dict[str, Any] = {"name": variant.name, "kind": variant.kind}
    try:
        if variant.kind == "train":
            checkpoint, train_metrics = _run_training(variant.settings, out_dir)
            record["train"] = train_metrics
            eval_options = (variant.settings.get("train") or {}).get("eval_options") or {}
            summary = _run_inference(variant.settings, out_dir, f"checkpoint:{checkpoint}", eval_options)
        else:
            detector = variant.settings.get("detector")
            if not detector:
                raise ConfigError(f"variant {variant.name!r} names no detector")
            summary = _run_inference(variant.settings, out_dir, str(detector), variant.settings.get("detector_options") or {})
        record["status"] = "ok"
        record["summary"] = summary.to_dict(orient="records")
    except Exception as err:  # a failed variant is reported, the sweep goes on
        record["status"] = "failed"
        record["error"] = f"{type(err).__name__}: {err}"
        (out_dir / "error.txt").write_text(traceback.format_exc())
        log.info("variant %s failed: %s (traceback in %s)", variant.name, record["error"], out_dir / "error.txt")
    record["seconds"] = round(time.time() - started, 1)
    if record["status"] == "ok":  # only finished variants are skipped on a rerun
        atomic_write_text(out_dir / "result.json", json.dumps(record, indent=1, default=str))
    return record


def variant_line(sweep: Sweep, record: dict[str, Any]) -> str:
    """One line for a finished variant: status, time and its metrics (the ALL row when the
    sweep spans several datasets, else each dataset's)."""
    head = f"{record['name']} ({record.get('kind', 'inference')}): {record['status']}"
    if record["status"] != "ok":
        return f"{head}: {record.get('error', '')}"
    rows = record.get("summary", [])
    rows = [r for r in rows if r.get("dataset") == "ALL"] or rows
    metrics = "; ".join(
        f"{r.get('dataset')} " + ", ".join(f"{m} {float(r[m]):.3f}" for m in sweep.metrics if r.get(m) is not None)
        for r in rows
    )
    return f"{head} in {record.get('seconds', '?')} s" + (f"; {metrics}" if metrics else "")


def run_sweep(
    sweep: Sweep, out: str | Path, *, only: list[str] | None = None, command: str = "", progress: bool = True
) -> list[dict[str, Any]]:
    """Run every variant (skipping finished ones) and write ``table.md`` / ``table.csv``
    (``command``: the command line, named in the table's header). With ``progress``, a bar
    over the variants and one line per variant on the terminal."""
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    selected = [v for v in sweep.variants if not only or v.name in only or v.slug in only]
    records = []
    with tqdm(selected, desc="sweep", unit="variant", disable=not progress) as bar:
        for variant in bar:
            vdir = out / variant.slug
            done = vdir / "result.json"
            if done.is_file():
                log.info("variant %s already finished; skipped", variant.name)
                records.append(json.loads(done.read_text()))
                continue
            log.info("running variant %s (%s)", variant.name, variant.kind)
            records.append(run_variant(variant, vdir))
            if progress:
                bar.write(variant_line(sweep, records[-1]))
    write_tables(sweep, records, out, command)
    return records


def _table_rows(sweep: Sweep, records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    datasets = list(sweep.datasets)
    for rec in records:
        for row in rec.get("summary", []):
            if row.get("dataset") not in datasets and row.get("dataset") is not None:
                datasets.append(row["dataset"])
    header = ["variant"] + [f"{ds} {m}" for ds in datasets for m in sweep.metrics] + ["status", "seconds"]
    rows = []
    for rec in records:
        by_ds = {row.get("dataset"): row for row in rec.get("summary", [])}
        cells = [rec["name"]]
        for ds in datasets:
            for metric in sweep.metrics:
                value = by_ds.get(ds, {}).get(metric)
                cells.append("" if value is None else f"{float(value):.3f}")
        status = rec["status"] if rec["status"] == "ok" else f"failed: {rec.get('error', '')}"
        cells += [status.replace("|", "/").replace("\n", " "), str(rec.get("seconds", ""))]
        rows.append(cells)
    return header, rows


def write_tables(sweep: Sweep, records: list[dict[str, Any]], out: Path, command: str = "") -> None:
    """``table.csv`` and ``table.md`` with one row per variant, columns per dataset x metric;
    ``table.md`` names the commit, the command and the machine it came from."""
    import csv

    from anomamind.provenance import header_lines

    header, rows = _table_rows(sweep, records)
    with open(out / "table.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    lines = [
        f"# Sweep `{sweep.name}`" + (f" (mirrors the paper's {sweep.mirrors})" if sweep.mirrors else ""),
        "",
        *header_lines(command or f"anomamind.rl.sweep.run_sweep on {sweep.source} (Python API)"),
        "",
        f"Source: `{sweep.source}`. Metrics are macro averages over series per dataset from the "
        "benchmark runner: F1 uses the detector's own decision (no threshold picked on labels); "
        "Best-F1 uses a confidence threshold chosen on the other fold of series (cross-fitted).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    (out / "table.md").write_text("\n".join(lines) + "\n")
