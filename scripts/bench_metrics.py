"""Time every metric on one long synthetic series (default 100,000 points).

Usage:
    python scripts/bench_metrics.py [--n 100000] [--window 100] [--repeats 3] [--out FILE.md]

Builds a noisy seasonal series with range anomalies, a continuous score (a rolling
z-score of the values) and a 0/1 prediction (score above mean + 3 std), then times
``get_metrics`` (score entry point), ``get_metrics_pred`` (prediction entry point), each
metric on its own, and the point metrics (point P/R/F1, oracle and cross-fitted Best-F1).
Reports the best of ``--repeats`` runs; with ``--out`` it also writes a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable

import numpy as np

from anomamind.eval import affiliation, range_f1, tsbad, vus
from anomamind.eval.point_metrics import best_f1_oracle, cross_fitted_best_f1, point_prf


def make_series(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(labels, values, score, pred) of a synthetic series with ~1% anomalous points."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = np.sin(2 * np.pi * t / 96) + 0.2 * rng.standard_normal(n)
    labels = np.zeros(n, dtype=np.int64)
    n_ranges = max(1, n // 4000)
    for start in rng.choice(n - 200, size=n_ranges, replace=False):
        length = int(rng.integers(1, 80))
        labels[start : start + length] = 1
        values[start : start + length] += rng.choice([-1.5, 1.5])
    window = 96
    kernel = np.ones(window) / window
    mean = np.convolve(values, kernel, mode="same")
    std = np.sqrt(np.maximum(np.convolve(values**2, kernel, mode="same") - mean**2, 1e-12))
    score = np.abs(values - mean) / std
    pred = (score > score.mean() + 3 * score.std()).astype(np.int64)
    return labels, values, score, pred


def best_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="series length")
    parser.add_argument("--window", type=int, default=100, help="VUS sliding window")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write a Markdown table here")
    args = parser.parse_args(argv)

    labels, _, score, pred = make_series(args.n)
    grid = np.linspace(score.min(), score.max(), tsbad.ORACLE_GRID_SIZE)
    levels = np.quantile(score, [0.9, 0.95, 0.99])
    names = [f"s{i}" for i in range(4)]
    w = args.window
    rows: list[tuple[str, Callable[[], object]]] = [
        ("get_metrics (all 9 score metrics)", lambda: tsbad.get_metrics(score, labels, w)),
        ("get_metrics_pred (all 8 pred metrics)", lambda: tsbad.get_metrics_pred(score, labels, pred, w)),
        ("  AUC-ROC + AUC-PR (scikit-learn)", lambda: (
            tsbad.roc_auc_score(labels, score), tsbad.average_precision_score(labels, score))),
        ("  VUS-ROC + VUS-PR", lambda: vus.vus_roc_pr(labels, score, w)),
        ("  Standard-F1 (oracle)", lambda: tsbad._oracle_standard_f1(labels, score)),
        ("  PA-F1 (oracle, 100 thresholds)", lambda: range_f1.pa_f1_grid(labels, score, grid)),
        ("  Event-based-F1 (oracle, 100 thresholds)", lambda: range_f1.event_f1_grid(labels, score, grid)),
        ("  R-based-F1 (oracle, 100 thresholds)", lambda: range_f1.range_f1_grid(labels, score, grid)),
        ("  Affiliation-F (oracle, 100 thresholds)", lambda: tsbad._oracle_affiliation(labels, score)),
        ("  VUS-Recall/Precision/F (pred)", lambda: vus.vus_pred(labels, pred, w)),
        ("  Affiliation-F (pred)", lambda: affiliation.affiliation_f(labels, pred)),
        ("point_prf", lambda: point_prf(labels, pred)),
        ("best_f1_oracle (3 levels)", lambda: best_f1_oracle(labels, score, levels)),
        ("cross_fitted_best_f1 (4 series x 100 candidates)", lambda: cross_fitted_best_f1(
            [labels] * 4, [score] * 4, names, grid)),
    ]
    results = [(name, best_time(fn, args.repeats)) for name, fn in rows]
    total = results[0][1] + results[1][1] + sum(t for name, t in results[-3:])

    command = "python scripts/bench_metrics.py " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}"
    lines = [
        f"Series: synthetic, n={args.n}, {int(labels.sum())} anomalous points in "
        f"{int(np.sum(np.diff(np.concatenate(([0], labels))) == 1))} ranges, "
        f"{int(pred.sum())} predicted points, sliding_window={w}.",
        f"Command: `{command.strip()}`; best of {args.repeats} runs; {machine}.",
        "",
        "| what | seconds |",
        "|---|---:|",
        *[f"| {name.strip() if not name.startswith('  ') else '&nbsp;&nbsp;' + name.strip()} | {t:.3f} |" for name, t in results],
        f"| **all metrics (both entry points + point metrics)** | **{total:.3f}** |",
    ]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
