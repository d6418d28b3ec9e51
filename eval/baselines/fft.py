"""FFT detector after TimeEval's ``fft`` (Rasheed et al.): local outliers of the residual.

The series is reconstructed from its ``ifft_parameters`` lowest Fourier coefficients; points
whose reconstruction error is above average are candidates, and a candidate's score is the
absolute z-score (over all candidates) of its deviation from the mean of its
``local_neighbor_window`` neighbours. TimeEval then pairs opposite-signed outliers into
regions; that pairing leaves isolated spikes unscored, so here every local outlier keeps its
own score (documented difference). No fit step: the method looks at the whole series.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from anomamind.eval.baselines.base import BaseDetector


def lowpass_reconstruction(values: np.ndarray, n_coefficients: int) -> np.ndarray:
    """Inverse FFT keeping the zero frequency and the ``n_coefficients - 1`` lowest pairs."""
    spectrum = scipy.fft.fft(values)
    k = max(min(n_coefficients, values.size), 1)
    if k == 1:
        spectrum[1:] = 0.0
    else:
        spectrum[k : values.size - (k - 1)] = 0.0
    return np.real(scipy.fft.ifft(spectrum))


def centred_mean(values: np.ndarray, half_width: int) -> np.ndarray:
    """Mean of ``values[i - half_width : i + half_width]`` (TimeEval's neighbour average)."""
    n = values.size
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(n)
    lo = np.maximum(idx - half_width, 0)
    hi = np.maximum(np.minimum(idx + half_width, n - 1), lo + 1)
    return (csum[hi] - csum[lo]) / (hi - lo)


class FFTDetector(BaseDetector):
    """Low-pass FFT reconstruction, then local-outlier z-scores of the residual."""

    def __init__(self, ifft_parameters: int = 5, local_neighbor_window: int = 21, sigmas: float = 3.0) -> None:
        super().__init__(sigmas)
        self.ifft_parameters = int(ifft_parameters)
        self.local_neighbor_window = int(local_neighbor_window)

    def _score(self, X: np.ndarray) -> np.ndarray:
        residual = np.abs(lowpass_reconstruction(X, self.ifft_parameters) - X)
        candidates = residual > residual.mean()
        scores = np.zeros_like(X)
        if not candidates.any():
            return scores
        local_diff = (X - centred_mean(X, self.local_neighbor_window // 2))[candidates]
        spread = local_diff.std()
        if spread == 0:
            return scores
        scores[candidates] = np.abs((local_diff - local_diff.mean()) / spread)
        return scores
