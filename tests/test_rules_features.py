"""The rule-side feature library: correct on ordinary windows, no infinities on flat ones."""

import numpy as np
import pytest

from anomamind.rules import features as F


@pytest.mark.parametrize("n", [1, 2, 5, 500, 1001])
def test_fast_median_matches_numpy(n):
    x = np.random.default_rng(n).normal(size=n)
    assert F.fast_median(x) == pytest.approx(np.median(x))


def test_robust_zscore_flags_the_outlier_and_survives_flat_windows():
    x = np.random.default_rng(0).normal(size=300)
    x[100] = 12.0
    z = F.robust_zscore(x)
    assert np.argmax(np.abs(z)) == 100 and z[100] > 8
    med = np.median(x)
    assert z[0] == pytest.approx((x[0] - med) / (1.4826 * np.median(np.abs(x - med))))
    flat = np.full(50, 3.0)
    for feature in (F.robust_zscore, F.diff_zscore, F.local_deviation, F.spectral_residual, F.rolling_std_ratio):
        out = feature(flat)
        assert out.shape == flat.shape and np.all(out == 0), feature.__name__
    mostly_flat = flat.copy()
    mostly_flat[10] = 4.0  # MAD is 0: falls back to the std instead of dividing by zero
    assert np.isfinite(F.robust_zscore(mostly_flat)).all() and F.robust_zscore(mostly_flat)[10] > 5


def test_diff_local_and_dilate():
    x = np.zeros(200)
    x[120:] = 5.0  # a level shift: one big step
    jump = F.diff_zscore(x + np.random.default_rng(1).normal(scale=0.1, size=200))
    assert np.argmax(jump) == 120
    spike = np.sin(np.arange(200) / 5.0)
    spike[60] += 3
    assert np.argmax(F.local_deviation(spike, 11)) == 60
    assert F.dilate(np.arange(10) == 4, 2).nonzero()[0].tolist() == [2, 3, 4, 5, 6]
    noisy = np.concatenate([np.random.default_rng(2).normal(scale=0.1, size=150), np.random.default_rng(3).normal(scale=2, size=50)])
    ratio = F.rolling_std_ratio(noisy, 20)
    assert ratio[175:].mean() > 5 * ratio[:100].mean()


def test_spectral_residual_highlights_a_spike():
    x = np.sin(np.arange(400) * 2 * np.pi / 40) + np.random.default_rng(4).normal(scale=0.05, size=400)
    x[250] += 3
    z = F.spectral_residual(x)
    assert np.argmax(z) in range(248, 253) and z.max() > 5
