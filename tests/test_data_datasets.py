"""resolve_data: every spec form (synthetic, file, folder, EasyTSAD), filters, limits; the data CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anomamind.cli import main
from anomamind.envs.datasets import DEFAULT_SYNTHETIC_SERIES, resolve_data
from anomamind.envs.synthetic import generate_dataset, write_tsbad_csv
from anomamind.types import DataError


@pytest.fixture(scope="module")
def csv_root(tmp_path_factory) -> Path:
    """Synthetic series written as TSB-AD-U CSVs into two dataset folders."""
    root = tmp_path_factory.mktemp("tsbad")
    for i, series in enumerate(generate_dataset(5, seed=3, length=600)):
        series.dataset = "ALPHA" if i < 3 else "BETA"
        series.name = series.name.replace("SYNTHETIC", series.dataset)
        write_tsbad_csv(series, root / series.dataset)
    return root


def test_synthetic_specs():
    default = resolve_data("synthetic")
    assert len(default.series) == DEFAULT_SYNTHETIC_SERIES and default.failures == []
    three = resolve_data("synthetic:3", seed=5)
    np.testing.assert_array_equal(three.series[0].values, generate_dataset(3, seed=5)[0].values)
    assert len(resolve_data("SYNTHETIC:2", datasets=["synthetic"]).series) == 2


@pytest.mark.parametrize("spec", ["synthetic:0", "synthetic:x", "synthetic:"])
def test_bad_synthetic_count(spec):
    with pytest.raises(DataError, match="synthetic:N"):
        resolve_data(spec)


def test_synthetic_with_a_foreign_dataset_filter():
    with pytest.raises(DataError, match="SYNTHETIC"):
        resolve_data("synthetic", datasets=["YAHOO"])


def test_folder_file_and_filters(csv_root):
    everything = resolve_data(str(csv_root))
    assert [len([s for s in everything.series if s.dataset == d]) for d in ("ALPHA", "BETA")] == [3, 2]
    assert [s.dataset for s in resolve_data(str(csv_root), datasets=["beta"]).series] == ["BETA", "BETA"]
    single = sorted((csv_root / "ALPHA").glob("*.csv"))[0]
    assert resolve_data(str(single)).series[0].source == str(single)
    assert len(resolve_data(str(csv_root / "BETA")).series) == 2


def test_limit_keeps_first_k_names_per_dataset(csv_root):
    limited = resolve_data(str(csv_root), limit=2)
    alpha = sorted(p.stem for p in (csv_root / "ALPHA").glob("*.csv"))[:2]
    assert [s.name for s in limited.series if s.dataset == "ALPHA"] == alpha
    assert len([s for s in limited.series if s.dataset == "BETA"]) == 2
    with pytest.raises(DataError, match="limit"):
        resolve_data(str(csv_root), limit=0)


def test_easytsad_root_is_detected(tmp_path):
    folder = tmp_path / "UTS" / "WSD" / "s1"
    folder.mkdir(parents=True)
    for part, array in {"train": np.ones(5), "test": np.arange(6.0), "train_label": np.zeros(5), "test_label": np.eye(6)[2]}.items():
        np.save(folder / f"{part}.npy", array)
    result = resolve_data(str(tmp_path))
    assert [(s.dataset, len(s), s.train_end, s.first_anomaly) for s in result.series] == [("WSD", 11, 5, 7)]


def test_missing_spec_says_what_is_accepted(tmp_path):
    with pytest.raises(DataError) as info:
        resolve_data(str(tmp_path / "nothing"))
    assert "nothing" in str(info.value) and "synthetic" in str(info.value)


def test_cli_info_and_synth(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path), "--n-series", "2", "--length", "700"]) == 0
    assert len(list((tmp_path / "SYNTHETIC").glob("*.csv"))) == 2
    (tmp_path / "SYNTHETIC" / "bad.csv").write_text("Data,Label\n1,2\n")
    assert main(["data", "info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "1400" in out and "skipped:" in out and "bad.csv" in out
    assert main(["data", "info", str(tmp_path / "absent")]) == 1
    assert "no such file or folder" in capsys.readouterr().err
