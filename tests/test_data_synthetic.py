"""The TODS-style generator: determinism per seed, every kind present and labelled, CSV round trip."""

from __future__ import annotations

import numpy as np
import pytest

from anomamind.envs.loaders import load_directory, parse_tsbad_name
from anomamind.envs.synthetic import ALL_KINDS, KIND_TO_TYPE, generate_dataset, generate_series, write_tsbad_csv
from anomamind.types import ANOMALY_TYPES, DataError, Series


def test_same_seed_same_series_different_seed_different_series():
    a, b, c = generate_series(7, length=2000), generate_series(7, length=2000), generate_series(8, length=2000)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.meta == b.meta and a.name == b.name
    assert not np.array_equal(a.values, c.values)


def test_dataset_is_deterministic_per_seed():
    first, again, other = generate_dataset(3, seed=1, length=1500), generate_dataset(3, seed=1, length=1500), generate_dataset(3, seed=2, length=1500)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x.values, y.values)
        assert x.name == y.name
    assert any(not np.array_equal(x.values, z.values) for x, z in zip(first, other))


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_each_kind_is_injected_and_labelled(kind):
    series = generate_series(3, length=3000, kinds=(kind,), n_anomalies_per_kind=2)
    anomalies = series.meta["anomalies"]
    assert [a["kind"] for a in anomalies] == [kind, kind]
    assert all(a["type"] == KIND_TO_TYPE[kind] and a["type"] in ANOMALY_TYPES for a in anomalies)
    expected = np.zeros(len(series), dtype=np.int8)
    for a in anomalies:
        expected[a["start"] : a["end"] + 1] = 1
        if kind.startswith("point"):
            assert a["start"] == a["end"]
        else:
            assert a["end"] - a["start"] >= 9
    np.testing.assert_array_equal(series.labels, expected)
    # The anomaly really changed the signal: compare with the same seed without anomalies.
    clean = generate_series(3, length=3000, kinds=(), n_anomalies_per_kind=0)
    for a in anomalies:
        segment = slice(a["start"], a["end"] + 1)
        assert np.max(np.abs(series.values[segment] - clean.values[segment])) > 0.05
    outside = series.labels == 0
    np.testing.assert_array_equal(series.values[outside], clean.values[outside])


def test_point_global_leaves_the_normal_range_and_contextual_stays_inside():
    for seed in range(5):
        series = generate_series(seed, length=2000, kinds=("point-global", "point-contextual"))
        normal = series.values[series.labels == 0]
        for a in series.meta["anomalies"]:
            value = series.values[a["start"]]
            if a["kind"] == "point-global":
                assert value > normal.max() or value < normal.min()
            else:
                assert normal.min() <= value <= normal.max()


def test_default_dataset_covers_every_kind_with_varied_magnitudes():
    dataset = generate_dataset()
    assert len(dataset) == 8
    kinds = {a["kind"] for s in dataset for a in s.meta["anomalies"]}
    assert kinds == set(ALL_KINDS)
    magnitudes = [a["magnitude"] for s in dataset for a in s.meta["anomalies"]]
    assert min(magnitudes) < 0.5 and max(magnitudes) > 1.2
    assert all(s.has_anomalies and s.dataset == "SYNTHETIC" and s.domain == "Synthetic" for s in dataset)
    assert len({s.name for s in dataset}) == 8


@pytest.mark.parametrize("n_series", [1, 2])
def test_small_datasets_still_cover_every_kind(n_series):
    dataset = generate_dataset(n_series, seed=4, length=1500)
    assert {a["kind"] for s in dataset for a in s.meta["anomalies"]} == set(ALL_KINDS)


def test_training_prefix_is_normal_and_name_matches_fields():
    for series in generate_dataset(4, seed=3, length=2500):
        assert not series.labels[: series.train_end].any()
        assert series.first_anomaly == int(np.argmax(series.labels))
        parsed = parse_tsbad_name(series.name)
        assert parsed["train_end"] == series.train_end and parsed["first_anomaly"] == series.first_anomaly


def test_magnitude_scales_the_deviation():
    def deviation(magnitude):
        s = generate_series(11, length=2000, kinds=("collective-trend",), magnitude=magnitude)
        clean = generate_series(11, length=2000, kinds=(), n_anomalies_per_kind=0)
        return float(np.abs(s.values - clean.values).max())

    assert deviation(0.3) < deviation(1.0) < deviation(2.0)


def test_short_series_get_shorter_segments():
    series = generate_series(2, length=200)
    assert len(series.meta["anomalies"]) == len(ALL_KINDS)
    with pytest.raises(DataError, match="too short|cannot place"):
        generate_series(2, length=20, n_anomalies_per_kind=3)


def test_bad_arguments_are_rejected():
    with pytest.raises(DataError, match="unknown anomaly kind"):
        generate_series(0, kinds=("level-shift",))
    with pytest.raises(DataError, match="magnitude"):
        generate_series(0, magnitude=0)
    with pytest.raises(DataError, match="length must be positive"):
        generate_series(0, length=0)
    with pytest.raises(DataError, match="seed non-negative"):
        generate_series(-1)
    with pytest.raises(DataError, match="n_series"):
        generate_dataset(0)


def test_written_csv_loads_back_identically(tmp_path):
    dataset = generate_dataset(2, seed=5, length=800)
    for series in dataset:
        path = write_tsbad_csv(series, tmp_path / "SYNTHETIC")
        assert path.name == series.name + ".csv"
    loaded = load_directory(tmp_path).series
    for original, back in zip(dataset, loaded):
        np.testing.assert_allclose(back.values, original.values, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(back.labels, original.labels)
        assert (back.dataset, back.train_end, back.first_anomaly) == ("SYNTHETIC", original.train_end, original.first_anomaly)


def test_write_builds_a_tsbad_name_for_other_series(tmp_path):
    series = Series(values=np.arange(10.0), labels=np.r_[np.zeros(7), np.ones(3)], name="my series", dataset="MINE")
    path = write_tsbad_csv(series, tmp_path)
    assert parse_tsbad_name(path.name)["first_anomaly"] == 7
    with pytest.raises(DataError, match="without labels"):
        write_tsbad_csv(Series(values=np.arange(3.0)), tmp_path)
