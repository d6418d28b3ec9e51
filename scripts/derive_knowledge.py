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

Only the dev split may be used (../shared/data/tsbad/dev); the held-out split is never
read. Failed files are reported and skipped; per-series scores are cached under
``--cache`` so an interrupted run resumes.

    nice -n 10 python scripts/derive_knowledge.py --data /work/shared/data/tsbad/dev
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from anomamind.envs.loaders import load_series
from anomamind.paths import CONFIG_DIR
from anomamind.tools.context import ToolContext
from anomamind.tools.features_global import deseasonalised, phase_scale, same_phase_deviation, spectral_residual_score
from anomamind.tools.features_local import level_step_scale, level_step
from anomamind.tools.evidence import runs
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/tsbad/dev"), help="dev split root")
    parser.add_argument("--out", type=Path, default=CONFIG_DIR / "knowledge", help="knowledge directory to update")
    parser.add_argument("--cache", type=Path, default=Path(".cache/derive_knowledge"), help="per-file score cache")
    parser.add_argument("--datasets", nargs="+", default=list(DATASET_FILES), choices=list(DATASET_FILES))
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a directory")
    if "dev" not in args.data.resolve().parts:
        parser.error(f"--data {args.data} is not a dev split: thresholds may only come from dev")
    pooled: list[dict[str, np.ndarray]] = []
    used = []
    for dataset in args.datasets:
        files = sorted((args.data / dataset).glob("*.csv"))
        samples, failures = [], []
        started = time.perf_counter()
        for i, path in enumerate(files):
            try:
                samples.append(file_sample(path, args.cache, rng_seed=i))
            except Exception as err:  # noqa: BLE001 - record the failure, go on with the batch
                failures.append(f"{path.name}: {type(err).__name__}: {err}")
        for failure in failures:
            print(f"  FAILED {failure}", file=sys.stderr)
        if not samples:
            print(f"{dataset}: no usable files under {args.data / dataset}", file=sys.stderr)
            continue
        derived = summarise(samples)
        update_file(args.out / f"{DATASET_FILES[dataset]}.yaml", derived, how_text(args.data, [dataset]))
        pooled.extend(samples)
        used.append(dataset)
        print(f"{dataset}: {len(samples)} files ({len(failures)} failed) in {time.perf_counter() - started:.1f}s")
        for name, t in derived["thresholds"].items():
            print(f"  {name:11s} threshold {t:8.3f}  {derived['threshold_stats'][name]}")
    if set(used) == set(DATASET_FILES):
        # the generic entry pools every dev series of every dataset
        update_file(args.out / "generic.yaml", summarise(pooled), how_text(args.data, used))
    else:
        print("generic.yaml left unchanged: it pools all four datasets (run without --datasets)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
