"""Spectral Residual (Ren et al., KDD 2019, "Time-Series Anomaly Detection Service at Microsoft").

The saliency map is the inverse FFT of the spectrum whose log-amplitude has its local average
removed (the "spectral residual"); a point's score is its saliency's relative deviation from
the trailing average saliency. As in the reference implementation, the series is first
extended by a few points extrapolated from the last slope so the last points can be scored.
No fit step: the transform is computed over the whole series.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from anomamind.eval.baselines.base import BaseDetector

_EPS = 1e-8


def trailing_mean(values: np.ndarray, n: int) -> np.ndarray:
    """Mean of the last ``n`` values up to and including each point (shorter at the start)."""
    csum = np.cumsum(values, dtype=np.float64)
    out = csum.copy()
    out[n:] = csum[n:] - csum[:-n]
    counts = np.minimum(np.arange(1, values.size + 1), n)
    return out / counts


def extrapolate_tail(values: np.ndarray, extend_num: int = 5, look_ahead: int = 5) -> np.ndarray:
    """Append ``extend_num`` copies of a slope-based one-step prediction (paper, Sec. 4.2)."""
    window = values[-look_ahead - 2 : -1]
    if window.size < 2:
        return np.concatenate([values, np.repeat(values[-1], extend_num)])
    last = window[-1]
    m = window.size
    slopes = (last - window[:-1]) / (m - 1 - np.arange(m - 1))
    prediction = window[1] + slopes.sum()
    return np.concatenate([values, np.repeat(prediction, extend_num)])


def saliency_map(values: np.ndarray, mag_window: int = 3) -> np.ndarray:
    """Magnitude of the inverse FFT of the spectral residual."""
    spectrum = scipy.fft.fft(values)
    magnitude = np.abs(spectrum)
    tiny = magnitude <= _EPS
    magnitude[tiny] = _EPS
    log_magnitude = np.log(magnitude)
    log_magnitude[tiny] = 0.0
    residual = np.exp(log_magnitude - trailing_mean(log_magnitude, mag_window))
    spectrum = spectrum * residual / magnitude
    spectrum[tiny] = 0.0
    return np.abs(scipy.fft.ifft(spectrum))


class SpectralResidualDetector(BaseDetector):
    """SR saliency, scored as relative deviation from its trailing mean."""

    def __init__(self, mag_window: int = 3, score_window: int = 40, extend_num: int = 5, sigmas: float = 3.0) -> None:
        super().__init__(sigmas)
        self.mag_window = int(mag_window)
        self.score_window = int(score_window)
        self.extend_num = int(extend_num)

    def _score(self, X: np.ndarray) -> np.ndarray:
        extended = extrapolate_tail(X, self.extend_num)
        saliency = saliency_map(extended, self.mag_window)
        average = trailing_mean(saliency, self.score_window)
        scores = np.abs(saliency - average) / np.maximum(average, _EPS)
        return scores[: X.size]
