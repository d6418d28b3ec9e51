"""The CPU smoke sweep (configs/sweeps/smoke.yaml) runs end to end: prepare, train, bench."""

from __future__ import annotations

import csv

import pytest

pytest.importorskip("trl")

from anomamind.paths import CONFIG_DIR  # noqa: E402
from anomamind.rl.sweep import load_sweep, run_sweep  # noqa: E402


@pytest.fixture
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models run faster on one thread, and CI has two cores
    yield
    torch.set_num_threads(before)


def test_smoke_sweep_trains_benchmarks_and_tabulates(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.chdir(CONFIG_DIR.parent)  # the sweep names configs/train/smoke.yaml relative to the repo
    sweep = load_sweep(CONFIG_DIR / "sweeps" / "smoke.yaml", {"progress": False})
    records = run_sweep(sweep, tmp_path / "out", only=["all rewards", "heuristic agent (reference)"])
    assert [r["status"] for r in records] == ["ok", "ok"], [r.get("error") for r in records]
    trained = records[0]
    assert trained["train"]["checkpoint"]
    assert (tmp_path / "out" / "prepared").is_dir()
    rows = list(csv.DictReader(open(tmp_path / "out" / "table.csv")))
    assert [r["variant"] for r in rows] == ["all rewards", "heuristic agent (reference)"]
    for row in rows:
        assert 0.0 <= float(row["SYNTHETIC f1"]) <= 1.0
