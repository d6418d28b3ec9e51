"""Derive the knowledge memory's per-dataset thresholds from the development split.

For every series of ``<data>/<DATASET>/*.csv`` (TSB-AD-U format) the script computes, with
exactly the code the tools use (non-causal context: the whole series is the reference),
the per-point evidence scores

    value_z, diff_z, spike, seasonal_z  (those locate_candidates combines)
    level_step, phase_z, sr             (level_shifts, phase_deviation, spectral_residual)

and pools them over the dataset, at labelled and at unlabelled points (unlabelled points
are subsampled per series and weighted back). For each score it records the threshold
that maximises pooled point-F1 of ``score >= threshold`` among thresholds that flag at
most 1% of normal points (a false-alarm budget: unconstrained F1 on a weak score drifts
towards flagging everything), that F1, the 99th/99.5th percentile at normal points and the median at anomalous points,
plus label statistics (anomaly share, interval lengths). It then rewrites the
``thresholds``, ``threshold_stats``, ``label_stats`` and ``thresholds_how`` fields of
``configs/knowledge/<dataset>.yaml`` (other fields are kept) and, pooled over all
datasets (only when all four were derived), of ``generic.yaml``.

It also derives what the heuristic agent uses on a dataset the memory has no entry for
(``label_free_detector`` in generic.yaml, and ``event_fraction``):

- ``event_fraction``: anomalies last this fraction of a series' period (the median over
  the datasets of the median labelled-interval length over the median period); with the
  period of an unseen series it gives the labelling convention: ranges when anomalies are
  expected to span 2 points or more, else points.
- the label-free settings, by coordinate search on the mean over the datasets of the mean
  series point-F1 of :class:`DecisionReplica` (the detector's thresholding over a whole
  series: hysteresis runs per feature, unioned and merged; no windows, locator gating or
  evaluator, so a proxy, fast enough to search; the benchmark then runs the real agent):
  first the target false-alarm rate of the peaks-over-threshold calibration (each
  threshold raised to the series' own tail at that rate, tools/calibration.py; one rate
  for all), feature thresholds (the floors) shared by both conventions and the ranges
  convention's hysteresis and merge gap; then the ranges convention's own thresholds and
  extent, refined on the series it applies to. The points convention labels exactly the
  exceeding points (hysteresis 1, no merge).

``--exclude DATASET`` writes a knowledge directory derived without that dataset (for the
leave-one-dataset-out benchmark, scripts/bench_unseen_datasets.py): configs/knowledge
copied to ``--out`` without the dataset's file, and generic.yaml re-derived (pooled
thresholds, label-free settings) from the other datasets only.

Only the dev split may be used (../shared/data/tsbad/dev); the held-out split is never
read. Failed files are reported and skipped; per-series scores are cached under
``--cache`` so an interrupted run resumes.

    nice -n 10 python scripts/derive_knowledge.py --data ../shared/data/tsbad/dev
    nice -n 10 python scripts/derive_knowledge.py --data ../shared/data/tsbad/dev --exclude WSD --out runs/knowledge-without-WSD
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from anomamind.envs.loaders import load_series
from anomamind.paths import CONFIG_DIR
from anomamind.tools.context import ToolContext
from anomamind.tools.features_global import deseasonalised, phase_scale, same_phase_deviation, spectral_residual_score
from anomamind.tools.features_local import level_step_scale, level_step
from anomamind.tools.evidence import runs
from anomamind.tools.features_profile import FEATURES, FeatureProfile, runs_above
from anomamind.tools.localization import evidence_scores

SCORES = ("value_z", "diff_z", "spike", "seasonal_z", "level_step", "phase_z", "sr")
NORMAL_SAMPLE = 4000
DATASET_FILES = {"YAHOO": "yahoo", "TODS": "tods", "IOPS": "iops", "WSD": "wsd"}


def series_scores(values: np.ndarray) -> dict[str, np.ndarray]:
    """All evidence scores of a whole series, as the tools compute them (absolute values)."""
    ctx = ToolContext(values, 0, values.size)
    out = evidence_scores(ctx, 0, values.size - 1)
    seasonless = deseasonalised(ctx, 0, values.size)[0]
    out["level_step"] = np.abs(np.nan_to_num(level_step(seasonless, 10) / level_step_scale(ctx, 10)))
    period = ctx.features.period[0]
    if period is not None:
        out["phase_z"] = np.abs(np.nan_to_num(same_phase_deviation(values, period, 3) / phase_scale(ctx, period, 3)))
    else:
        out["phase_z"] = np.zeros(values.size)
    out["sr"] = np.maximum(spectral_residual_score(values), 0.0)
    return out


def file_sample(path: Path, cache: Path, rng_seed: int) -> dict[str, np.ndarray]:
    """Scores at all anomalous and a weighted sample of normal points of one file (cached)."""
    cached = cache / (path.parent.name + "__" + path.stem + ".npz")
    if cached.is_file():
        return dict(np.load(cached))
    series = load_series(path)
    labels = series.labels.astype(bool)
    scores = series_scores(series.values)
    normal = np.flatnonzero(~labels)
    rng = np.random.default_rng(rng_seed)
    keep = rng.choice(normal, size=min(NORMAL_SAMPLE, normal.size), replace=False) if normal.size else normal
    idx = np.concatenate((np.flatnonzero(labels), np.sort(keep)))
    weight = np.concatenate((np.ones(labels.sum()), np.full(keep.size, normal.size / max(keep.size, 1))))
    spans = runs(labels)
    sample = {name: s[idx] for name, s in scores.items()}
    sample.update(
        label=labels[idx].astype(np.int8),
        weight=weight,
        n_points=np.array([labels.size]),
        n_anomalous=np.array([labels.sum()]),
        span_lengths=np.array([e - s + 1 for s, e in spans], dtype=np.int64),
        has_period=np.array([scores["phase_z"].any()]),
    )
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(cached, **sample)
    return sample


def best_f1_threshold(
    score: np.ndarray, label: np.ndarray, weight: np.ndarray, floor: float
) -> tuple[float, float]:
    """(threshold, F1) maximising weighted point-F1 of ``score >= threshold`` among
    thresholds >= ``floor`` (the false-alarm budget)."""
    candidates = np.unique(np.quantile(score[label == 1], np.linspace(0.0, 0.99, 100)))
    candidates = np.concatenate(([floor], candidates[candidates > floor]))
    order = np.argsort(-score)
    s, lab, w = score[order], label[order], weight[order]
    tp_cum = np.cumsum(w * lab)
    all_cum = np.cumsum(w)
    positives = float((w * lab).sum())
    best = (float("inf"), 0.0)
    for t in candidates:
        k = np.searchsorted(-s, -t, side="right")  # points with score >= t
        if k == 0:
            continue
        tp, flagged = tp_cum[k - 1], all_cum[k - 1]
        f1 = 2 * tp / (flagged + positives) if flagged + positives else 0.0
        if f1 > best[1]:
            best = (float(t), float(f1))
    return best


def summarise(samples: list[dict[str, np.ndarray]]) -> dict:
    """Thresholds and statistics pooled over ``samples``."""
    label = np.concatenate([s["label"] for s in samples])
    weight = np.concatenate([s["weight"] for s in samples])
    thresholds, stats = {}, {}
    for name in SCORES:
        score = np.concatenate([s[name] for s in samples])
        if name == "phase_z":  # only series with a period have this score
            keep = np.concatenate([np.full(s["label"].size, bool(s["has_period"][0])) for s in samples])
            score_, label_, weight_ = score[keep], label[keep], weight[keep]
        else:
            score_, label_, weight_ = score, label, weight
        if label_.sum() == 0:
            continue
        normal = score_[label_ == 0]
        nw = weight_[label_ == 0]
        order = np.argsort(normal)
        cdf = np.cumsum(nw[order]) / nw.sum()
        q99 = float(normal[order][np.searchsorted(cdf, 0.99)])
        t, f1 = best_f1_threshold(score_, label_, weight_, floor=q99)
        thresholds[name] = round(t, 3)
        stats[name] = {
            "point_f1_at_threshold": round(f1, 3),
            "normal_q99": round(q99, 3),
            "normal_q995": round(float(normal[order][np.searchsorted(cdf, 0.995)]), 3),
            "anomalous_median": round(float(np.median(score_[label_ == 1])), 3),
        }
    lengths = np.concatenate([s["span_lengths"] for s in samples])
    points = int(sum(int(s["n_points"][0]) for s in samples))
    anomalous = int(sum(int(s["n_anomalous"][0]) for s in samples))
    label_stats = {
        "series": len(samples),
        "points": points,
        "anomalous_share": round(anomalous / points, 4),
        "intervals": int(lengths.size),
        "interval_length_median": int(np.median(lengths)),
        "interval_length_p90": int(np.quantile(lengths, 0.9)),
        "single_point_interval_share": round(float((lengths == 1).mean()), 3),
        "series_with_period_share": round(float(np.mean([bool(s["has_period"][0]) for s in samples])), 3),
    }
    return {"thresholds": thresholds, "threshold_stats": stats, "label_stats": label_stats}


def how_text(data_dir: Path, datasets: list[str]) -> str:
    return (
        f"Derived by scripts/derive_knowledge.py from the dev split only ({data_dir.name}/ of "
        f"{', '.join(datasets)}; never the held-out split) on {time.strftime('%Y-%m-%d')}: "
        "for each evidence score (computed by the tools' own code, whole series as reference), "
        "the threshold maximising pooled point-F1 of score >= threshold over labelled vs "
        "unlabelled points, among thresholds flagging at most 1% of unlabelled points "
        "(unlabelled points subsampled per series and weighted back). "
        "threshold_stats gives that F1 and the score quantiles behind the choice."
    )


def update_file(path: Path, derived: dict, how: str) -> None:
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    data.update(derived)
    data["thresholds_how"] = how
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True))


# --- the label-free settings ---------------------------------------------------------

#: Search grids: feature thresholds (robust z; None switches a feature off), target
#: false-alarm rates of the calibration (at most 1% of a series' points per feature: a
#: larger budget is no longer a false-alarm rate when anomalies are about 1% of points),
#: the ranges convention's hysteresis and merge gap.
FLOOR_GRID = (None, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0)
RATE_GRID = (0.01, 0.005, 0.002, 0.001)
HYSTERESIS_GRID = (0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
GAP_GRID = (0, 1, 2, 3, 5, 8)
#: The points convention: exactly the points above the threshold.
POINTS = {"hysteresis": 1.0, "merge_gap": 0}
SEARCH_PASSES = 3


@dataclass
class SeriesEvidence:
    """What the search needs of one dev series: each feature's robust z (whole-series mode,
    the agent's own FeatureProfile), its period, its label counts, and each feature's
    calibrated threshold per rate of RATE_GRID."""

    dataset: str
    name: str
    period: int
    z: dict[str, np.ndarray]
    tails: dict[tuple[str, float], float]
    label_cumsum: np.ndarray
    label_runs: np.ndarray  # (k, 2) inclusive labelled intervals

    @property
    def n_true(self) -> int:
        return int(self.label_cumsum[-1])


def series_evidence(path: Path, cache: Path) -> SeriesEvidence:
    """The evidence of one file (cached as ``<folder>__<stem>.evidence.npz``)."""
    cached = cache / (path.parent.name + "__" + path.stem + ".evidence.npz")
    if not cached.is_file():
        series = load_series(path)
        profile = FeatureProfile.build(series.values)
        arrays = {f"z_{f}": profile.zscores(f, 0, profile.n).astype(np.float32) for f in profile.features}
        for f in profile.features:
            arrays[f"tail_{f}"] = np.array([profile.tail_threshold(f, 0, rate) for rate in RATE_GRID])
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cached, labels=series.labels, period=np.array([profile.period]), dataset=np.array([series.dataset]), **arrays)
    with np.load(cached) as data:
        labels = data["labels"].astype(bool)
        features = [f for f in FEATURES if f"z_{f}" in data]
        return SeriesEvidence(
            dataset=str(data["dataset"][0]),
            name=path.stem,
            period=int(data["period"][0]),
            z={f: data[f"z_{f}"] for f in features},
            tails={(f, rate): float(t) for f in features for rate, t in zip(RATE_GRID, data[f"tail_{f}"])},
            label_cumsum=np.concatenate(([0], np.cumsum(labels))).astype(np.int64),
            label_runs=np.array(runs(labels), dtype=np.int64).reshape(-1, 2),
        )


def derive_event_fraction(evidence: list[SeriesEvidence]) -> float:
    """Median over the datasets of (median labelled-interval length / median period)."""
    ratios = []
    for dataset in sorted({e.dataset for e in evidence}):
        group = [e for e in evidence if e.dataset == dataset]
        lengths = np.concatenate([e.label_runs[:, 1] - e.label_runs[:, 0] + 1 for e in group])
        periods = [e.period for e in group if e.period > 0]
        if lengths.size and periods:
            ratios.append(float(np.median(lengths)) / float(np.median(periods)))
    return round(float(np.median(ratios)), 5) if ratios else 0.0


@dataclass
class DecisionReplica:
    """The heuristic detector's thresholding over whole series: per feature, runs of
    ``z > threshold * hysteresis`` that reach the threshold (features_profile.runs_above,
    what the ``feature_runs`` tool returns), unioned and merged across gaps of at most
    ``merge_gap`` points; point F1 from the runs. Runs are cached per (series, feature,
    threshold, hysteresis), so a search step costs little more than the merge."""

    evidence: list[SeriesEvidence]
    _runs: dict[tuple[int, str, float, float], np.ndarray] = field(default_factory=dict)

    def feature_runs(self, i: int, feature: str, threshold: float, hysteresis: float) -> np.ndarray:
        key = (i, feature, round(threshold, 4), hysteresis)
        if key not in self._runs:
            found = runs_above(self.evidence[i].z[feature], threshold, threshold * hysteresis)
            self._runs[key] = np.array([[s, e] for s, e, _ in found], dtype=np.int64).reshape(-1, 2)
        return self._runs[key]

    def f1(self, i: int, thresholds: dict[str, float], hysteresis: float, gap: int) -> float:
        ev = self.evidence[i]
        parts = [self.feature_runs(i, f, t, hysteresis) for f, t in thresholds.items() if f in ev.z]
        spans = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)
        if spans.size == 0:
            return 0.0
        spans = spans[np.argsort(spans[:, 0], kind="stable")]
        reach = np.maximum.accumulate(spans[:, 1])
        new = np.concatenate(([True], spans[1:, 0] > reach[:-1] + gap + 1))
        group = np.cumsum(new) - 1
        starts = spans[new, 0]
        ends = np.zeros(starts.size, dtype=np.int64)
        np.maximum.at(ends, group, spans[:, 1])
        tp = int((ev.label_cumsum[ends + 1] - ev.label_cumsum[starts]).sum())
        flagged = int((ends - starts + 1).sum())
        return 2.0 * tp / (flagged + ev.n_true) if flagged + ev.n_true else 0.0


def is_ranges(evidence: SeriesEvidence, event_fraction: float) -> bool:
    """The labelling convention the agent infers for this series (DetectionSettings.for_period)."""
    return evidence.period > 0 and round(evidence.period * event_fraction) >= 2


def label_free_score(
    replica: DecisionReplica, settings: dict, event_fraction: float
) -> tuple[float, dict[str, float]]:
    """Mean over datasets of the mean series F1 under label-free ``settings``
    (``false_alarm_rate``; ``points`` and ``ranges``, each with its ``thresholds``, ranges
    also with ``hysteresis`` and ``merge_gap``), and the per-dataset means."""
    by_dataset: dict[str, list[float]] = {}
    rate = settings["false_alarm_rate"]
    for i, ev in enumerate(replica.evidence):
        convention = settings["ranges"] if is_ranges(ev, event_fraction) else {**settings["points"], **POINTS}
        thresholds = {
            f: max(t, ev.tails[(f, rate)]) for f, t in convention["thresholds"].items() if t is not None and f in ev.z
        }
        f1 = replica.f1(i, thresholds, convention["hysteresis"], convention["merge_gap"])
        by_dataset.setdefault(ev.dataset, []).append(f1)
    means = {d: float(np.mean(v)) for d, v in sorted(by_dataset.items())}
    return float(np.mean(list(means.values()))), means


def tune_label_free(evidence: list[SeriesEvidence], event_fraction: float, start: dict) -> tuple[dict, dict[str, float]]:
    """Coordinate search from the generic thresholds ``start`` and a 1% rate, in two
    stages: the rate, thresholds shared by both conventions (so they are judged on every
    dataset) and the ranges extent; then the ranges convention's own thresholds and extent,
    refined from the shared ones."""
    replica = DecisionReplica(evidence)
    floors = {f: start.get("thresholds", {}).get(f) for f in FEATURES}
    settings = {
        "false_alarm_rate": 0.01,
        "points": {"thresholds": dict(floors)},
        "ranges": {"thresholds": dict(floors), "hysteresis": 0.5, "merge_gap": 5},
    }
    extent = [(("ranges",), "hysteresis", HYSTERESIS_GRID), (("ranges",), "merge_gap", GAP_GRID)]
    shared = [((), "false_alarm_rate", RATE_GRID)] + [(("shared",), f, FLOOR_GRID) for f in FEATURES] + extent
    settings = _coordinate_search(replica, settings, event_fraction, shared)
    if any(is_ranges(ev, event_fraction) for ev in evidence):
        own = [(("ranges", "thresholds"), f, FLOOR_GRID) for f in FEATURES] + extent
        settings = _coordinate_search(replica, settings, event_fraction, own)
    return settings, label_free_score(replica, settings, event_fraction)[1]


def _coordinate_search(replica: DecisionReplica, settings: dict, event_fraction: float, candidates: list) -> dict:
    """At most SEARCH_PASSES passes over ``(path, key, grid)`` candidates; the path
    ``("shared",)`` sets a threshold of both conventions at once."""
    best, _ = label_free_score(replica, settings, event_fraction)
    for _ in range(SEARCH_PASSES):
        improved = False
        for path, key, grid in candidates:
            for value in grid:
                trial = copy.deepcopy(settings)
                targets = [trial[c]["thresholds"] for c in ("points", "ranges")] if path == ("shared",) else [trial]
                for part in () if path == ("shared",) else path:
                    targets = [t[part] for t in targets]
                for target in targets:
                    target[key] = value
                score, _ = label_free_score(replica, trial, event_fraction)
                if score > best + 1e-4:
                    best, settings, improved = score, trial, True
        if not improved:
            break
    return settings


def label_free_section(settings: dict, per_dataset: dict[str, float], data_dir: Path, event_fraction: float) -> dict:
    """The ``label_free_detector`` mapping of generic.yaml, with its ``how``."""
    f1_text = ", ".join(f"{d} {v:.3f}" for d, v in per_dataset.items())
    return {
        "how": (
            f"Derived by scripts/derive_knowledge.py from the dev split only ({data_dir.name}/ of "
            f"{', '.join(per_dataset)}) on {time.strftime('%Y-%m-%d')}: coordinate search on the mean over these "
            "datasets of the mean series point F1 of the detector's whole-series thresholding (a proxy of the "
            f"full workflow; proxy F1 {f1_text}). Used for datasets without an entry of their own: each "
            "threshold is raised to the series' own peaks-over-threshold level at false_alarm_rate; series "
            f"whose anomalies are expected to span >= 2 points (event_fraction {event_fraction} of the period) "
            "use the ranges overlay, the others label exactly the exceeding points."
        ),
        "thresholds": _floats(settings["points"]["thresholds"]),
        "hysteresis": POINTS["hysteresis"],
        "merge_gap": POINTS["merge_gap"],
        "false_alarm_rate": settings["false_alarm_rate"],
        "event_fraction": event_fraction,
        "ranges": {
            "thresholds": _floats(settings["ranges"]["thresholds"]),
            "hysteresis": settings["ranges"]["hysteresis"],
            "merge_gap": settings["ranges"]["merge_gap"],
            "max_fraction": 1.0,
        },
    }


def _floats(thresholds: dict) -> dict:
    return {f: (None if t is None else float(t)) for f, t in thresholds.items()}


def update_generic(path: Path, pooled: dict, how: str, label_free: dict, event_fraction: float) -> None:
    """Rewrite generic.yaml's derived fields: pooled thresholds, event_fraction in
    heuristic_detector, the label_free_detector section."""
    update_file(path, pooled, how)
    data = yaml.safe_load(path.read_text())
    data.setdefault("heuristic_detector", {})["event_fraction"] = event_fraction
    data["label_free_detector"] = label_free
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/tsbad/dev"), help="dev split root")
    parser.add_argument("--out", type=Path, default=CONFIG_DIR / "knowledge", help="knowledge directory to update")
    parser.add_argument("--cache", type=Path, default=Path(".cache/derive_knowledge"), help="per-file score cache")
    parser.add_argument("--datasets", nargs="+", default=list(DATASET_FILES), choices=list(DATASET_FILES))
    parser.add_argument(
        "--exclude", choices=list(DATASET_FILES), default=None,
        help="derive without this dataset into --out (a copy of configs/knowledge without its entry)",
    )
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a directory")
    if "dev" not in args.data.resolve().parts:
        parser.error(f"--data {args.data} is not a dev split: thresholds may only come from dev")
    datasets = [d for d in args.datasets if d != args.exclude]
    if args.exclude:
        if args.out.resolve() == (CONFIG_DIR / "knowledge").resolve():
            parser.error("--exclude writes a separate knowledge directory: give --out")
        shutil.copytree(CONFIG_DIR / "knowledge", args.out, dirs_exist_ok=True)
        (args.out / f"{DATASET_FILES[args.exclude]}.yaml").unlink(missing_ok=True)
    pooled: list[dict[str, np.ndarray]] = []
    evidence: list[SeriesEvidence] = []
    used = []
    for dataset in datasets:
        files = sorted((args.data / dataset).glob("*.csv"))
        samples, failures = [], []
        started = time.perf_counter()
        for i, path in enumerate(files):
            try:
                samples.append(file_sample(path, args.cache, rng_seed=i))
                evidence.append(series_evidence(path, args.cache))
            except Exception as err:  # noqa: BLE001 - record the failure, go on with the batch
                failures.append(f"{path.name}: {type(err).__name__}: {err}")
        for failure in failures:
            print(f"  FAILED {failure}", file=sys.stderr)
        if not samples:
            print(f"{dataset}: no usable files under {args.data / dataset}", file=sys.stderr)
            continue
        pooled.extend(samples)
        used.append(dataset)
        print(f"{dataset}: {len(samples)} files ({len(failures)} failed) in {time.perf_counter() - started:.1f}s")
        if args.exclude:
            continue  # the other datasets' own entries are copied, not re-derived
        derived = summarise(samples)
        update_file(args.out / f"{DATASET_FILES[dataset]}.yaml", derived, how_text(args.data, [dataset]))
        for name, t in derived["thresholds"].items():
            print(f"  {name:11s} threshold {t:8.3f}  {derived['threshold_stats'][name]}")
    if set(used) != set(DATASET_FILES) - {args.exclude}:
        print("generic.yaml left unchanged: it pools every dataset not excluded (run without --datasets)")
        return 0
    event_fraction = derive_event_fraction(evidence)
    start = yaml.safe_load((args.out / "generic.yaml").read_text()).get("heuristic_detector", {})
    started = time.perf_counter()
    settings, per_dataset = tune_label_free(evidence, event_fraction, start)
    print(f"label-free settings in {time.perf_counter() - started:.0f}s: event_fraction {event_fraction}, {settings}")
    print("  proxy F1 " + ", ".join(f"{d} {v:.3f}" for d, v in per_dataset.items()))
    update_generic(
        args.out / "generic.yaml", summarise(pooled), how_text(args.data, used),
        label_free_section(settings, per_dataset, args.data, event_fraction), event_fraction,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
