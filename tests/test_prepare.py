"""`anomamind prepare`: window selection, the by-series split, columns, resume from cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("datasets")

from anomamind.agents.parsing import is_well_formatted  # noqa: E402
from anomamind.envs.synthetic import write_tsbad_csv  # noqa: E402
from anomamind.envs.synthetic import generate_dataset  # noqa: E402
from anomamind.rl.prepare import (  # noqa: E402
    COLUMNS,
    PrepareConfig,
    prepare_dataset,
    select_windows,
    split_series_names,
)
from anomamind.rl.rewards import two_sided  # noqa: E402
from anomamind.types import DataError, Series, Window  # noqa: E402


class _Task:
    def __init__(self, start: int, anomalous: bool) -> None:
        labels = np.zeros(10, dtype=np.int8)
        labels[3] = int(anomalous)
        self.window = Window("s", start // 10, start, start + 10, np.zeros(10), labels)


def test_select_windows_ratio_and_cap():
    tasks = [_Task(10 * i, i in (2, 5, 7)) for i in range(20)]
    rng = np.random.default_rng(0)
    picked = select_windows(tasks, normal_ratio=2.0, max_anomalous=None, rng=rng)
    assert sum(t.window.has_anomalies for t in picked) == 3
    assert sum(not t.window.has_anomalies for t in picked) == 6
    assert [t.window.start for t in picked] == sorted(t.window.start for t in picked)
    capped = select_windows(tasks, normal_ratio=0.0, max_anomalous=2, rng=rng)
    assert len(capped) == 2 and all(t.window.has_anomalies for t in capped)


def test_split_by_series_per_dataset():
    series = [Series(np.zeros(5), name=f"{d}{i}", dataset=d) for d in "AB" for i in range(5)]
    train, val = split_series_names(series, 0.4, seed=1)
    assert not train & val and train | val == {s.name for s in series}
    assert sum(n.startswith("A") for n in val) == 2 and sum(n.startswith("B") for n in val) == 2
    # a dataset with one series stays in train; no validation asked: none
    lone = [Series(np.zeros(5), name="x", dataset="C")]
    assert split_series_names(lone, 0.5, 0) == ({"x"}, set())
    assert split_series_names(series, 0.0, 0)[1] == set()


def test_prepare_synthetic_folder(tmp_path):
    data = tmp_path / "data" / "SYN"
    for s in generate_dataset(n_series=4, seed=3, length=400):
        write_tsbad_csv(s, data)
    (data / "broken.csv").write_text("Data,Label\n1,0\nx,1\n")
    out = tmp_path / "prepared"
    cfg = PrepareConfig(
        data=str(tmp_path / "data"), out=str(out), window=50, val_fraction=0.25,
        cache_dir=str(tmp_path / "cache"), progress=False,
    )
    summary = prepare_dataset(cfg)
    assert any("broken.csv" in f["source"] for f in summary["failures"])

    from datasets import load_from_disk

    splits = load_from_disk(str(out))
    assert set(splits) == {"train", "validation"}
    train, val = splits["train"], splits["validation"]
    assert tuple(train.column_names) == COLUMNS
    assert len(val) > 0 and not set(train["series"]) & set(val["series"])
    assert summary["splits"]["validation"]["series"] == sorted(set(val["series"]))
    # normal_ratio 1: at most one normal window per anomalous one (fewer when a short
    # series has fewer normal windows), and some of each
    n_anomalous = sum(train["has_anomaly"])
    assert 0 < len(train) - n_anomalous <= n_anomalous
    for row in train:
        assert len(row["labels"]) == row["window_end"] - row["window_start"]
        assert row["has_anomaly"] == any(row["labels"])
        assert row["prompt"][0]["role"] == "system" and row["prompt"][-1]["role"] == "user"
        assert f"Window {row['window_start']}-{row['window_end'] - 1};" in row["prompt"][-1]["content"]
        assert "candidates" in json.loads(row["evidence"])
        assert is_well_formatted(row["heuristic_answer"]) and '"explanation"' not in row["heuristic_answer"]
    assert summary["detector_prompt"] == "compact"
    # the heuristic teacher's answers are scoreable SFT targets
    scores = two_sided(None, train["heuristic_answer"], window_start=train["window_start"],
                       window_end=train["window_end"], labels=train["labels"])
    assert all(0.0 <= s <= 1.0 for s in scores)

    # a second run with the same cache is served from it and gives the same prompts
    again = prepare_dataset(PrepareConfig(**{**cfg.__dict__, "out": str(tmp_path / "again")}))
    assert again["upstream_cache"]["hits"] == summary["upstream_cache"]["misses"]
    assert again["upstream_cache"]["misses"] == 0
    assert load_from_disk(str(tmp_path / "again"))["train"]["prompt"] == train["prompt"]


def test_prepare_errors(tmp_path):
    with pytest.raises(ValueError, match="normal-ratio"):
        PrepareConfig(data="synthetic", out=str(tmp_path), normal_ratio=-1)
    with pytest.raises(ValueError, match="val-fraction"):
        PrepareConfig(data="synthetic", out=str(tmp_path), val_fraction=1.0)
    with pytest.raises(DataError, match="no such file"):
        prepare_dataset(PrepareConfig(data=str(tmp_path / "missing"), out=str(tmp_path / "o"), progress=False))


def test_prepare_keeps_unlabelled_series_for_training_without_label_rewards(tmp_path):
    data = tmp_path / "data" / "MINE"
    labelled = generate_dataset(n_series=2, seed=5, length=300)
    for s in labelled:
        write_tsbad_csv(s, data)
    data.joinpath("kpi.csv").write_text("value\n" + "".join(f"{v}\n" for v in labelled[0].values))
    out = tmp_path / "prepared"
    summary = prepare_dataset(PrepareConfig(
        data=str(tmp_path / "data"), out=str(out), window=50, val_fraction=0.5,
        max_windows_per_series=3, cache_dir=str(tmp_path / "cache"), progress=False,
    ))
    from datasets import load_from_disk

    splits = load_from_disk(str(out))
    rows = [r for r in splits["train"] if r["series"] == "kpi"]
    assert len(rows) == 3 and summary["splits"]["train"]["unlabelled_windows"] == 3
    assert all(r["labels"] is None and r["has_anomaly"] is None and r["heuristic_answer"] for r in rows)
    assert "kpi" not in splits["validation"]["series"]
    assert two_sided(None, [r["heuristic_answer"] for r in rows], window_start=[r["window_start"] for r in rows],
                     window_end=[r["window_end"] for r in rows], labels=[r["labels"] for r in rows]) == [None] * 3
