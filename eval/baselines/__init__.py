"""Classical baselines with a PyOD-like interface, and their benchmark factories.

Each ``make_*`` factory (named in :mod:`anomamind.eval.registry`) returns a
:class:`~anomamind.eval.baselines.series_detector.BaselineSeriesDetector`; keyword options
(``--detector-option NAME.key=value``) go to the estimator's constructor, except
``fit_on`` (``train_prefix`` or ``whole_series``), the wrapper's fit rule.
"""

from __future__ import annotations

from typing import Any

from anomamind.eval.baselines.base import BaseDetector, minmax_normalise, sigma_threshold
from anomamind.eval.baselines.fft import FFTDetector
from anomamind.eval.baselines.iforest import IForestDetector
from anomamind.eval.baselines.matrix_profile import MatrixProfileDetector
from anomamind.eval.baselines.series_detector import BaselineSeriesDetector
from anomamind.eval.baselines.spectral_residual import SpectralResidualDetector
from anomamind.eval.baselines.zscore import RollingZScoreDetector


def _factory(name: str, cls: type[BaseDetector], fit_on: str = "train_prefix", **fixed: Any):
    def make(**options: Any) -> BaselineSeriesDetector:
        rule = options.pop("fit_on", fit_on)
        try:
            cls(**fixed, **options)  # validate the options now, with a readable message
        except TypeError as err:
            raise ValueError(f"detector {name!r}: bad option ({err})") from err
        return BaselineSeriesDetector(name, lambda: cls(**fixed, **options), fit_on=rule)

    make.__name__ = f"make_{name.replace('-', '_')}"
    make.__doc__ = f"The {name!r} baseline ({cls.__name__}) as a series detector."
    return make


make_fft = _factory("fft", FFTDetector)
make_spectral_residual = _factory("sr", SpectralResidualDetector)
make_iforest = _factory("iforest", IForestDetector)
make_iforest_unsupervised = _factory("iforest-unsup", IForestDetector, fit_on="whole_series")
make_rolling_zscore = _factory("zscore", RollingZScoreDetector, on_diff=False)
make_rolling_zscore_diff = _factory("zscore-diff", RollingZScoreDetector, on_diff=True)
make_matrix_profile = _factory("matrix-profile", MatrixProfileDetector)

__all__ = [
    "BaseDetector",
    "BaselineSeriesDetector",
    "FFTDetector",
    "IForestDetector",
    "MatrixProfileDetector",
    "RollingZScoreDetector",
    "SpectralResidualDetector",
    "make_fft",
    "make_iforest",
    "make_iforest_unsupervised",
    "make_matrix_profile",
    "make_rolling_zscore",
    "make_rolling_zscore_diff",
    "make_spectral_residual",
    "minmax_normalise",
    "sigma_threshold",
]
