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
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from anomamind.eval import affiliation, tsbad, vus
from anomamind.eval.point_metrics import best_f1_oracle, cross_fitted_best_f1, point_prf
from anomamind.provenance import command_line, header_lines, machine_summary


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


def fixture_comparison(repeats: int) -> str | None:
    """Both entry points on the 42 TSB-AD fixture cases, against TSB-AD's own recorded times."""
    folder = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tsbad_metrics"
    if not (folder / "tsbad_metric_cases.npz").exists():
        return None
    cases = np.load(folder / "tsbad_metric_cases.npz")
    expected = json.loads((folder / "tsbad_metric_expected.json").read_text())
    reference = sum(c["timing_s"]["get_metrics"] + c["timing_s"]["get_metrics_pred"] for c in expected)

    def run_all() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for case in expected:
                i, w = case["case"], int(cases["sliding_window"][case["case"]])
                tsbad.get_metrics(cases[f"score_{i}"], cases[f"labels_{i}"], w)
                tsbad.get_metrics_pred(cases[f"score_{i}"], cases[f"labels_{i}"], cases[f"pred_{i}"], w)

    ours = best_time(run_all, repeats)
    return (
        f"- The 42 TSB-AD fixture cases (n = 200 or 3000), both entry points: {ours:.2f} s here; "
        f"TSB-AD 1.5 itself took {reference:.2f} s (the fixtures' `timing_s`, their 2-core CPU machine)"
    )


def time_all(labels: np.ndarray, score: np.ndarray, pred: np.ndarray, window: int, repeats: int):
    """(name, seconds) per metric group, and the total for both entry points + point metrics."""
    grid = np.linspace(score.min(), score.max(), tsbad.ORACLE_GRID_SIZE)
    levels = np.quantile(score, [0.9, 0.95, 0.99])
    names = [f"s{i}" for i in range(4)]
    w = window

    def only(*keys: str) -> dict[str, float]:
        return tsbad.get_metrics(score, labels, w, keys=keys)

    rows: list[tuple[str, Callable[[], object]]] = [
        ("get_metrics (all 9 score metrics)", lambda: tsbad.get_metrics(score, labels, w)),
        ("get_metrics_pred (all 8 pred metrics)", lambda: tsbad.get_metrics_pred(score, labels, pred, w)),
        ("point_prf", lambda: point_prf(labels, pred)),
        ("best_f1_oracle (3 levels)", lambda: best_f1_oracle(labels, score, levels)),
        ("cross_fitted_best_f1 (4 series x 100 candidates)", lambda: cross_fitted_best_f1(
            [labels] * 4, [score] * 4, names, grid)),
        ("- AUC-ROC + AUC-PR (scikit-learn)", lambda: only("AUC-ROC", "AUC-PR")),
        ("- VUS-ROC + VUS-PR", lambda: only("VUS-ROC", "VUS-PR")),
        ("- Standard-F1 (oracle)", lambda: only("Standard-F1")),
        ("- PA-F1 (oracle, 100 thresholds)", lambda: only("PA-F1")),
        ("- Event-based-F1 (oracle, 100 thresholds)", lambda: only("Event-based-F1")),
        ("- R-based-F1 (oracle, 100 thresholds)", lambda: only("R-based-F1")),
        ("- Affiliation-F (oracle, 100 thresholds)", lambda: only("Affiliation-F")),
        ("- VUS-Recall/Precision/F (pred)", lambda: vus.vus_pred(labels, pred, w)),
        ("- Affiliation-F (pred)", lambda: affiliation.affiliation_f(labels, pred)),
    ]
    results = [(name, best_time(fn, repeats)) for name, fn in rows]
    total = sum(t for _, t in results[:5])
    return results, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="series length")
    parser.add_argument("--window", type=int, default=100, help="VUS sliding window")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write a Markdown report here")
    args = parser.parse_args(argv)

    labels, _, zscore, pred = make_series(args.n)
    random_score = np.random.default_rng(1).random(args.n)  # worst case: many short ranges
    timings = {
        "rolling z-score": time_all(labels, zscore, pred, args.window, args.repeats),
        "uniform random": time_all(labels, random_score, pred, args.window, args.repeats),
    }
    n_ranges = int(np.sum(np.diff(np.concatenate(([0], labels))) == 1))
    lines = [
        "# Metric timing",
        "",
        *header_lines(command_line("python scripts/bench_metrics.py", argv),
                      split=f"synthetic (no benchmark data): n={args.n}, {int(labels.sum())} anomalous "
                      f"points in {n_ranges} ranges, {int(pred.sum())} predicted points, "
                      f"sliding_window={args.window}, thre=250",
                      machine=f"{machine_summary()}; numpy {np.__version__}"),
        f"- Timing: best of {args.repeats} runs per row",
        "- Scores: a rolling z-score of the values (realistic), and uniform random noise (worst",
        "  case: ~n/4 predicted ranges at mid thresholds for the oracle searches)",
        "",
        "| what | " + " | ".join(f"{k} (s)" for k in timings) + " |",
        "|---|" + "---:|" * len(timings),
    ]
    kinds = list(timings.values())
    for i, (name, _) in enumerate(kinds[0][0]):
        label = "&nbsp;&nbsp;" + name[2:] if name.startswith("- ") else name
        lines.append(f"| {label} | " + " | ".join(f"{k[0][i][1]:.3f}" for k in kinds) + " |")
    lines.append(
        "| **total: both entry points + point metrics** | "
        + " | ".join(f"**{k[1]:.3f}**" for k in kinds)
        + " |"
    )
    comparison = fixture_comparison(args.repeats)
    if comparison:
        lines += ["", comparison]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
