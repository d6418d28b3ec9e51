"""Classical baselines: PyOD-style interface, the mu + 3 sigma rule, planted anomalies found."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from anomamind.eval.baselines import (
    FFTDetector,
    IForestDetector,
    RollingZScoreDetector,
    SpectralResidualDetector,
    sigma_threshold,
)
from anomamind.eval.baselines.base import spread_window_scores
from anomamind.eval.registry import SeriesPrediction, create_detector
from anomamind.types import DataError, Series

SPIKE = 1500
SHIFT = slice(2200, 2260)


def planted_series(n: int = 3000, period: int = 50, seed: int = 0) -> Series:
    """A noisy sine with a spike at SPIKE and a raised plateau over SHIFT; train prefix 1000."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = np.sin(2 * np.pi * t / period) + 0.05 * rng.normal(size=n)
    labels = np.zeros(n, dtype=np.int8)
    values[SPIKE] += 4.0
    labels[SPIKE] = 1
    values[SHIFT] += 2.0
    labels[SHIFT] = 1
    return Series(values, labels, name="planted", dataset="TEST", train_end=1000)


# Sliding-window Isolation Forest sees a lone spike as one of ``window`` features and
# misses it (a known weakness); it is tested on the collective anomaly below instead.
SPIKE_FINDERS = ["fft", "sr", "zscore", "zscore-diff"]


@pytest.mark.parametrize("name", SPIKE_FINDERS)
def test_baseline_finds_planted_spike(name: str) -> None:
    series = planted_series()
    prediction = create_detector(name).detect(series)
    assert isinstance(prediction, SeriesPrediction)
    assert prediction.pred.shape == prediction.scores.shape == series.values.shape
    assert set(np.unique(prediction.pred)) <= {0, 1}
    # the decision flags the spike (or its immediate neighbourhood for window methods) ...
    window = prediction.info.get("window", 1)
    near_spike = prediction.pred[SPIKE - window : SPIKE + window + 1]
    assert near_spike.any(), f"{name} missed the planted spike"
    # ... and flags few points overall: mostly the planted anomalies
    assert prediction.pred.mean() < 0.1
    # scores rank anomalous points above normal ones (threshold-free sanity check)
    anomalous = series.labels.astype(bool)
    assert prediction.scores[anomalous].mean() > prediction.scores[~anomalous].mean()


@pytest.mark.parametrize("name", ["sr", "zscore", "zscore-diff"])
def test_point_detectors_pinpoint_spike(name: str) -> None:
    prediction = create_detector(name).detect(planted_series())
    top = int(np.argmax(prediction.scores))
    assert abs(top - SPIKE) <= 1


def test_iforest_and_zscore_see_the_level_shift() -> None:
    series = planted_series()
    for name in ("iforest", "zscore"):
        pred = create_detector(name).detect(series).pred
        assert pred[SHIFT].mean() > 0.3, name


def test_pyod_interface_fit_decision_function_predict() -> None:
    series = planted_series()
    for detector in (FFTDetector(), SpectralResidualDetector(), IForestDetector(window=20), RollingZScoreDetector()):
        assert detector.fit(series.values[:1000]) is detector
        scores = detector.decision_function(series.values)
        assert scores.shape == series.values.shape and np.isfinite(scores).all()
        pred = detector.predict(series.values)
        np.testing.assert_array_equal(pred, sigma_threshold(scores))
    column = series.values.reshape(-1, 1)  # PyOD passes (n, 1) arrays
    assert SpectralResidualDetector().fit(column).predict(column).shape == (series.values.size,)


def test_sigma_threshold_rule_is_mu_plus_three_sigma_of_minmax_scores() -> None:
    scores = np.zeros(1000)
    scores[10] = 100.0  # normalised: 1.0 at one point, 0 elsewhere
    scores[20] = 5.0  # normalised 0.05: below mu + 3 sigma (~0.095)
    pred = sigma_threshold(scores)
    assert pred[10] == 1 and pred[20] == 0 and pred.sum() == 1
    assert sigma_threshold(np.ones(50)).sum() == 0  # constant scores flag nothing


def test_fit_uses_training_prefix_when_present() -> None:
    series = planted_series()
    info = create_detector("iforest").detect(series).info
    assert info["fit_on"] == "train_prefix" and info["fit_points"] == 1000
    short = Series(series.values, series.labels, name="s", dataset="TEST", train_end=50)
    assert create_detector("iforest").detect(short).info["fit_on"] == "whole_series"
    assert create_detector("sr").detect(series).info["fit_on"] == "none"
    unsupervised = create_detector("iforest-unsup").detect(series).info
    assert unsupervised["fit_on"] == "whole_series" and unsupervised["fit_points"] == 3000
    assert create_detector("zscore", fit_on="whole_series").detect(series).info["fit_on"] == "whole_series"
    with pytest.raises(ValueError, match="fit_on must be one of"):
        create_detector("sr", fit_on="test_labels")


def test_bad_input_is_named() -> None:
    values = np.ones(100)
    values[7] = np.nan
    with pytest.raises(DataError, match="non-finite value at index 7"):
        SpectralResidualDetector().decision_function(values)
    with pytest.raises(DataError, match="univariate"):
        SpectralResidualDetector().decision_function(np.ones((10, 3)))
    with pytest.raises(ValueError, match="bad option"):
        create_detector("sr", no_such_option=1)


def test_window_follows_the_period_and_scores_spread_over_covering_windows() -> None:
    t = np.arange(4000)
    periodic = np.sin(2 * np.pi * t / 48) + 0.01 * np.random.default_rng(0).normal(size=t.size)
    assert abs(IForestDetector().fit(periodic).window_ - 48) <= 1
    assert IForestDetector(window=7).fit(periodic).window_ == 7
    spread = spread_window_scores(np.array([0.0, 3.0, 0.0]), window=2, n=4)
    np.testing.assert_allclose(spread, [0.0, 1.5, 1.5, 0.0])


MATRIX_PROFILE_SCRIPT = """
import json
import numpy as np
from anomamind.eval.registry import create_detector
from anomamind.types import Series
rng = np.random.default_rng(1)
t = np.arange(600)
values = np.sin(2 * np.pi * t / 20) + 0.05 * rng.normal(size=t.size)
labels = np.zeros(t.size, dtype=np.int8)
values[300:310] = values[300]  # a flattened stretch breaks the periodic shape
labels[300:310] = 1
prediction = create_detector("matrix-profile", max_points=300).detect(Series(values, labels, name="mp"))
print(json.dumps({"info": prediction.info, "top": int(np.argmax(prediction.scores)),
                  "hit": bool(prediction.pred[300:310].any()), "flagged": int(prediction.pred.sum())}))
"""


def test_matrix_profile_finds_discord() -> None:
    """Runs stumpy with numba's JIT disabled (pure Python) in a subprocess: the same
    algorithm, without half a minute of compilation in the test suite."""
    pytest.importorskip("stumpy")
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    done = subprocess.run([sys.executable, "-c", MATRIX_PROFILE_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["info"]["paa_factor"] == 2  # 600 points reduced to 300 by block means
    assert result["info"]["reduced_window"] == 10  # period 20 halved
    assert 280 <= result["top"] <= 330
    assert result["hit"] and result["flagged"] < 60
