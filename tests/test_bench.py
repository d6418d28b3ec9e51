"""Benchmark runner: outputs and columns, resume without rework, failures recorded and
counted, parallel workers, and the CLI's messages for bad input."""

from __future__ import annotations

import json
import re
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomamind.cli import main as cli_main
from anomamind.eval import bench
from anomamind.eval.registry import DETECTORS, SeriesPrediction
from anomamind.types import Series

CALLS: list[str] = []  # series names seen by the counting detector (in-process runs only)


class CountingDetector:
    """Flags points more than 4 sigma from the mean; records every call; raises on 'bad'."""

    name = "counting"

    def detect(self, series: Series) -> SeriesPrediction:
        CALLS.append(series.name)
        if series.name.startswith("bad"):
            raise RuntimeError(f"cannot handle {series.name}")
        z = np.abs(series.values - series.values.mean()) / series.values.std()
        return SeriesPrediction(pred=(z > 4).astype(np.int8), scores=z, info={"threshold_candidates": [2.0, 4.0]})


def make_counting(**options) -> CountingDetector:
    return CountingDetector()


@pytest.fixture(autouse=True)
def counting_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DETECTORS, "counting", f"{__name__}:make_counting")
    CALLS.clear()
    bench._DETECTORS.clear()


def tiny_series(name: str, dataset: str, seed: int, n: int = 800) -> Series:
    rng = np.random.default_rng(seed)
    values = np.sin(np.arange(n) / 8.0) + 0.1 * rng.normal(size=n)
    labels = np.zeros(n, dtype=np.int8)
    spot = 300 + 37 * (seed % 10)
    values[spot : spot + 3] += 5.0
    labels[spot : spot + 3] = 1
    return Series(values, labels, name=name, dataset=dataset, train_end=250)


def tiny_set(bad: bool = False) -> list[Series]:
    out = [tiny_series(f"a{i}", "ALPHA", i) for i in range(3)] + [tiny_series(f"b{i}", "BETA", 10 + i) for i in range(2)]
    if bad:
        out.append(tiny_series("bad0", "BETA", 20))
    return out


SUMMARY_COLUMNS = {"dataset", "detector", "n_series", "n_failed", "precision", "recall", "f1", "best_f1", "vus_pr", "affiliation_f"}
PER_SERIES_COLUMNS = {"dataset", "series", "detector", "status", "error", "precision", "recall", "f1", "best_f1", "vus_pr", "affiliation_f", "vus_window"}


def test_outputs_exist_with_the_right_columns(tmp_path: Path) -> None:
    summary = bench.run_benchmark(tiny_set(), ["sr", "counting"], tmp_path, sample_plots=2, progress=False)
    assert SUMMARY_COLUMNS <= set(summary.columns)
    on_disk = pd.read_csv(tmp_path / "summary.csv")
    assert SUMMARY_COLUMNS <= set(on_disk.columns)
    per_series = pd.read_csv(tmp_path / "per_series.csv")
    assert PER_SERIES_COLUMNS <= set(per_series.columns)
    assert len(per_series) == 2 * 5 and (per_series["status"] == "ok").all()
    # per-dataset rows plus an ALL row per detector; counts are right
    rows = summary.set_index(["detector", "dataset"])
    assert rows.loc[("sr", "ALPHA"), "n_series"] == 3 and rows.loc[("sr", "BETA"), "n_series"] == 2
    assert rows.loc[("sr", "ALL"), "n_series"] == 5
    # macro average = mean of the per-series values
    alpha = per_series[(per_series.detector == "counting") & (per_series.dataset == "ALPHA")]
    assert rows.loc[("counting", "ALPHA"), "f1"] == pytest.approx(alpha["f1"].mean())
    # the 4-sigma detector finds the +5 bumps exactly: perfect precision on every series
    assert (per_series[per_series.detector == "counting"]["precision"] == 1.0).all()
    table = (tmp_path / "table.md").read_text()
    for text in ("Best-F1", "VUS-PR", "Aff-F", "ALPHA P", "BETA P", "| sr |", "| counting |", "cross-fitted"):
        assert text in table
    plots = sorted((tmp_path / "plots").rglob("*.png"))
    assert len(plots) == 2 * 2  # 2 sample series x 2 detectors


def test_unlabelled_series_run_without_metrics_and_the_table_says_why(tmp_path: Path) -> None:
    series = tiny_set()
    unlabelled = tiny_series("u0", "ALPHA", 5)
    unlabelled.labels = None
    summary = bench.run_benchmark(series + [unlabelled], ["counting"], tmp_path, sample_plots=0, progress=False)
    per_series = pd.read_csv(tmp_path / "per_series.csv").set_index("series")
    assert per_series.loc["u0", "status"] == "ok" and per_series.loc["u0", "n_flagged"] == 3
    assert np.isnan(per_series.loc["u0", "f1"]) and np.isnan(per_series.loc["u0", "vus_pr"])
    assert not per_series.loc["u0", "labelled"] and per_series.loc["a0", "labelled"]
    labelled_alpha = per_series[(per_series.dataset == "ALPHA") & per_series.labelled]
    rows = summary.set_index(["detector", "dataset"])
    assert rows.loc[("counting", "ALPHA"), "f1"] == pytest.approx(labelled_alpha["f1"].mean())
    assert "1 series without labels (u0)" in (tmp_path / "table.md").read_text()


def test_cli_bench_on_a_value_only_csv_with_a_chosen_column(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    s = tiny_series("kpi", "MINE", 3)
    folder = tmp_path / "MINE"
    folder.mkdir()
    pd.DataFrame({"host": "a", "cpu": s.values, "mem": s.values * 2}).to_csv(folder / "kpi.csv", index=False)
    out = tmp_path / "run"
    args = ["bench", "--data", str(folder / "kpi.csv"), "--detector", "counting", "--out", str(out), "--no-progress"]
    assert cli_main(args) == 2
    assert "--column" in capsys.readouterr().err
    assert cli_main(args + ["--column", "mem", "--sample-plots", "1"]) == 0
    assert "without labels" in capsys.readouterr().out
    assert pd.read_csv(out / "per_series.csv")["n_flagged"].iloc[0] == 3


def test_best_f1_is_cross_fitted_on_the_other_fold(tmp_path: Path) -> None:
    bench.run_benchmark(tiny_set(), ["counting"], tmp_path, sample_plots=0, progress=False)
    per_series = pd.read_csv(tmp_path / "per_series.csv")
    assert set(per_series["best_f1_threshold"].dropna()) <= {2.0, 4.0}
    assert per_series["best_f1"].between(0, 1).all()


def test_second_run_does_no_work(tmp_path: Path) -> None:
    series = tiny_set()
    bench.run_benchmark(series, ["counting"], tmp_path, sample_plots=0, progress=False)
    assert len(CALLS) == 5
    cached_json = sorted((tmp_path / "cache").rglob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in cached_json]
    first = pd.read_csv(tmp_path / "summary.csv")

    bench.run_benchmark(series, ["counting"], tmp_path, sample_plots=0, progress=False)
    assert len(CALLS) == 5, "a finished pair was run again"
    assert [p.stat().st_mtime_ns for p in cached_json] == stamps
    assert pd.read_csv(tmp_path / "per_series.csv")["cached"].all()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "summary.csv").drop(columns="seconds"), first.drop(columns="seconds"))

    # an interrupted run = some results missing: only those are redone
    cached_json[0].unlink()
    bench.run_benchmark(series, ["counting"], tmp_path, sample_plots=0, progress=False)
    assert len(CALLS) == 6


def test_changed_options_or_values_are_not_served_from_cache(tmp_path: Path) -> None:
    series = tiny_set()
    bench.run_benchmark(series, ["sr"], tmp_path, sample_plots=0, progress=False)
    bench.run_benchmark(series, ["sr"], tmp_path, detector_options={"sr": {"score_window": 21}}, sample_plots=0, progress=False)
    assert not pd.read_csv(tmp_path / "per_series.csv")["cached"].any()
    assert len(list((tmp_path / "cache" / "sr").glob("*.json"))) == 10


def test_raising_detector_is_recorded_counted_and_the_run_goes_on(tmp_path: Path) -> None:
    summary = bench.run_benchmark(tiny_set(bad=True), ["counting"], tmp_path, sample_plots=0, progress=False)
    per_series = pd.read_csv(tmp_path / "per_series.csv", keep_default_na=False)
    failed = per_series[per_series["status"] == "failed"]
    assert list(failed["series"]) == ["bad0"]
    assert "RuntimeError: cannot handle bad0" in failed["error"].iloc[0]
    assert float(failed["f1"].iloc[0]) == 0.0 and float(failed["recall"].iloc[0]) == 0.0  # predicted nothing
    assert (per_series[per_series["series"] != "bad0"]["status"] == "ok").all()
    beta = summary.set_index(["detector", "dataset"]).loc[("counting", "BETA")]
    assert beta["n_failed"] == 1 and beta["n_series"] == 3
    assert "bad0" in (tmp_path / "table.md").read_text()
    # failures are not cached: the next run retries them (and only them)
    CALLS.clear()
    bench.run_benchmark(tiny_set(bad=True), ["counting"], tmp_path, sample_plots=0, progress=False)
    assert CALLS == ["bad0"]


def test_two_workers_match_in_process_results(tmp_path: Path) -> None:
    series = tiny_set(bad=True)
    one = bench.run_benchmark(series, ["zscore", "counting"], tmp_path / "one", sample_plots=0, progress=False)
    two = bench.run_benchmark(series, ["zscore", "counting"], tmp_path / "two", workers=2, sample_plots=0, progress=False)
    cols = ["dataset", "detector", "n_series", "n_failed", "precision", "recall", "f1", "best_f1", "vus_pr", "affiliation_f"]
    pd.testing.assert_frame_equal(one[cols], two[cols])
    assert two.set_index(["detector", "dataset"]).loc[("counting", "BETA"), "n_failed"] == 1


def test_unknown_detector_and_bad_options_fail_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="unknown detector 'nope'"):
        bench.run_benchmark(tiny_set(), ["nope"], tmp_path, progress=False)
    with pytest.raises(ValueError, match="bad option"):
        bench.run_benchmark(tiny_set(), ["sr"], tmp_path, detector_options={"sr": {"bogus": 1}}, progress=False)
    with pytest.raises(ValueError, match="not in the run"):
        bench.run_benchmark(tiny_set(), ["sr"], tmp_path, detector_options={"zscore": {}}, progress=False)
    assert CALLS == [] and not (tmp_path / "cache").exists()


# --- CLI -------------------------------------------------------------------------------


def test_cli_bench_on_synthetic_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    code = cli_main(["bench", "--data", "synthetic:2", "--detector", "sr", "--out", str(out), "--no-progress",
                     "--sample-plots", "0", "--set", "sr.score_window=21"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| sr |" in printed and "SYNTHETIC P" in printed
    info = json.loads(pd.read_csv(out / "per_series.csv")["info"].iloc[0])
    assert info["fit_on"] == "none"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "synthetic", "--detector", "nope"], "unknown detector 'nope'"),
        (["--data", "synthetic", "--datasets", "NOPE", "--detector", "sr"], "NOPE"),
        (["--data", "synthetic", "--detector", "sr", "--set", "zscore.window=3"], "must start with one of the --detector names"),
        (["--data", "synthetic", "--detector", "sr", "--set", "sr-window"], "not of the form key=value"),
        (["--data", "synthetic", "--detector", "sr", "--workers", "0"], "--workers"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str) -> None:
    assert cli_main(["bench", *args, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_cli_empty_folder_and_unknown_dataset_in_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["bench", "--data", str(empty), "--detector", "sr", "--out", str(tmp_path / "o")]) == 2
    assert "no CSV files" in capsys.readouterr().err
    folder = tmp_path / "data" / "ALPHA"
    folder.mkdir(parents=True)
    s = tiny_series("a0", "ALPHA", 0)
    pd.DataFrame({"Data": s.values, "Label": s.labels}).to_csv(folder / "001_ALPHA_id_1_Test_tr_250_1st_300.csv", index=False)
    assert cli_main(["bench", "--data", str(tmp_path / "data"), "--datasets", "YAHOO", "--detector", "sr", "--out", str(tmp_path / "o")]) == 2
    assert "no files for dataset(s) ['yahoo']" in capsys.readouterr().err


def test_cli_lists_detectors(capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["detectors"]) == 0
    names = capsys.readouterr().out.split()
    assert {"fft", "sr", "iforest", "zscore", "zscore-diff", "matrix-profile"} <= set(names)


def test_table_states_what_each_detector_looked_at() -> None:
    from anomamind.eval.report import _describe_windows

    assert _describe_windows([{"window_length": 100, "window_stride": 100}]) == "windows of 100 (stride 100)"
    assert _describe_windows([{"windows": 12}, {"windows": 50}]) == "windowed, 12-50 windows per series"
    assert _describe_windows([{"fit_on": "none"}]) == "whole series at once"


def test_cache_key_changes_with_the_code(monkeypatch):
    """A cached result from older code must not be served: the key includes a code fingerprint."""
    from anomamind.eval import bench_cache

    series = Series(values=np.arange(10.0), labels=np.zeros(10), name="s")
    before = bench_cache.pair_key(series, "sr", {})
    assert before == bench_cache.pair_key(series, "sr", {})
    monkeypatch.setattr(bench_cache, "code_fingerprint", lambda: "edited-code")
    assert bench_cache.pair_key(series, "sr", {}) != before


# --- sample plots ------------------------------------------------------------------------


class InlineExecutor(Executor):
    """Runs what is submitted at once, in this process, and remembers it."""

    def __init__(self, *args, **kwargs) -> None:
        self.submitted: list[str] = []
        INLINE_POOLS.append(self)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        self.submitted.append(getattr(fn, "func", fn).__name__)
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


INLINE_POOLS: list[InlineExecutor] = []


def plot_mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in (out / "plots").rglob("*.png")}


def test_plots_are_drawn_by_the_worker_pool_with_a_progress_bar(tmp_path: Path, monkeypatch, capsys) -> None:
    INLINE_POOLS.clear()
    monkeypatch.setattr(bench, "ProcessPoolExecutor", InlineExecutor)
    bench.run_benchmark(tiny_set(), ["counting", "sr"], tmp_path, workers=2, sample_plots=2, progress=True)
    (pool,) = INLINE_POOLS
    assert pool.submitted.count("run_pair") == 10 and pool.submitted.count("draw_plot") == 4
    assert len(plot_mtimes(tmp_path)) == 4
    assert "plots: 100%" in capsys.readouterr().err


def test_a_fully_cached_rerun_draws_no_plot(tmp_path: Path, monkeypatch) -> None:
    from anomamind.eval import report

    drawn: list[str] = []
    real = report.plot_series
    monkeypatch.setattr(report, "plot_series", lambda *a: drawn.append(a[-1].name) or real(*a))
    bench.run_benchmark(tiny_set(), ["counting"], tmp_path, sample_plots=2, progress=False)
    first = plot_mtimes(tmp_path)
    assert len(drawn) == 2 and len(first) == 2
    drawn.clear()
    bench.run_benchmark(tiny_set(), ["counting"], tmp_path, sample_plots=2, progress=False)
    assert drawn == [] and plot_mtimes(tmp_path) == first
    # a deleted plot, or one older than its recomputed result, is drawn again
    victim = next((tmp_path / "plots").rglob("*.png"))
    victim.unlink()
    bench.run_benchmark(tiny_set(), ["counting"], tmp_path, sample_plots=2, progress=False)
    assert drawn == [victim.name]


def test_a_failing_plot_is_a_warning_and_the_run_goes_on(tmp_path: Path, monkeypatch, caplog) -> None:
    from anomamind.eval import report

    def broken(*args):
        raise ValueError("cannot draw")

    monkeypatch.setattr(report, "plot_series", broken)
    summary = bench.run_benchmark(tiny_set(), ["counting"], tmp_path, sample_plots=1, progress=False)
    assert (tmp_path / "table.md").is_file() and len(summary)
    assert "plot of counting on ALPHA/a0 failed: ValueError: cannot draw" in caplog.text


def test_cli_table_names_the_commit_and_the_command(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert cli_main(["bench", "--data", "synthetic:2", "--detector", "sr", "--out", str(out), "--no-progress",
                     "--sample-plots", "0"]) == 0
    head = (out / "table.md").read_text().splitlines()[:6]
    assert re.match(r"- Commit: `([0-9a-f]{7,40}(\+changes)?|unknown)`$", head[2]), head
    assert head[3] == f"- Command: `anomamind bench --data synthetic:2 --detector sr --out {out} --no-progress --sample-plots 0`"
    assert head[4].startswith("- Machine: ") and "load average" in head[4]


def test_plots_are_drawn_in_process_when_the_pool_broke(tmp_path: Path, caplog) -> None:
    from concurrent.futures import BrokenExecutor

    from anomamind.eval import report

    class BrokenPool(InlineExecutor):
        def submit(self, fn, /, *args, **kwargs):
            raise BrokenExecutor("a worker died")

    bench.run_benchmark(tiny_set(), ["counting"], tmp_path, sample_plots=1, progress=False)
    for png in (tmp_path / "plots").rglob("*.png"):
        png.unlink()
    tasks = [bench.PairTask("counting", {}, s, bench.cache_stem(tmp_path, s, "counting", {})) for s in tiny_set()]
    jobs = report.plan_plots(tasks, tmp_path / "plots", 1)
    assert len(report.draw_plots(jobs, bench.load_arrays, BrokenPool(), progress=False)) == 1
    assert "the worker pool is broken" in caplog.text
