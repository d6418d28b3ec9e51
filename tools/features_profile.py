"""Series-level feature profiles and the tools over them: ``feature_runs`` and
``raw_value_outliers`` (the heuristic agent's feature-extraction calls, open to every role).

Each feature is a residual of the series against a reference (a short median for spikes,
the previous point for jumps, a long median for level and sequence deviations, the same
phase one or two periods away for seasonal deviations, the series median for global
outliers), turned into a robust z-score by a scale (1.4826 * MAD) estimated on the
series. The residuals are computed once per series with vectorised filters
(:func:`series_profile` caches the profile per series array), so every window only slices
arrays: this is what keeps the heuristic agent above 50k points/s.

Two preprocessing modes, recorded in every trajectory:
- ``whole-series`` (default): centred references and scales from the whole series, as a
  batch detector over a stored series would do;
- ``causal``: every residual at ``t`` uses ``x[..t]`` only and every scale the prefix
  before the window (re-estimated each time the prefix doubles; at least the training
  prefix when one is given), as a streaming monitor would have to.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage, signal

from anomamind.tools.context import ToolArgumentError, ToolContext

#: The features, in the order tools and prompts list them.
FEATURES: tuple[str, ...] = ("spike", "jump", "level", "seasonal", "global")

#: What each feature measures (shown by the tool schemas and the docs).
FEATURE_DESCRIPTIONS: dict[str, str] = {
    "spike": "deviation from the median of the 4 neighbouring points (point anomalies)",
    "jump": "first difference (abrupt changes, spikes' edges)",
    "level": "deviation from a 51-point running median (level shifts and sequence anomalies)",
    "seasonal": "deviation from the same phase in neighbouring periods (seasonal/shape anomalies)",
    "global": "deviation from the series median (global outliers)",
}

SPIKE_SPAN = 5
LEVEL_SPAN = 51
MIN_PERIOD = 4
MAX_PERIOD = 2000  # a day of 1-minute samples (1440) must fit
PERIOD_SAMPLE = 12000
MIN_PREFIX = 100


#: Beyond this magnitude a series is divided by a power of ten before its residuals are
#: computed: differences and FFTs of values near float64's limit (1.8e308) overflow, and
#: robust z-scores do not depend on the unit.
SAFE_MAGNITUDE = 1e100


def within_safe_range(x: np.ndarray) -> np.ndarray:
    """``x``, or ``x / 10**k`` when its largest finite magnitude exceeds SAFE_MAGNITUDE."""
    finite = np.abs(x[np.isfinite(x)])
    peak = float(finite.max()) if finite.size else 0.0
    if peak <= SAFE_MAGNITUDE:
        return x
    return x / 10.0 ** int(np.floor(np.log10(peak)))


def robust_scale(values: np.ndarray) -> float:
    """1.4826 * MAD, falling back to the standard deviation (then 1e-9) on flat data."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1e-9
    med = np.median(values)
    scale = 1.4826 * float(np.median(np.abs(values - med)))
    if scale <= 1e-12:
        scale = float(np.std(values))
    return max(scale, 1e-9)


def estimate_period(values: np.ndarray, max_period: int = MAX_PERIOD) -> int:
    """Dominant period: the highest autocorrelation peak that stands out (height >= 0.2,
    prominence >= 0.15, so the slow decay of a smooth series is not mistaken for a cycle);
    0 when there is none."""
    x = np.asarray(values[:PERIOD_SAMPLE], dtype=float)
    if x.size < 3 * MIN_PERIOD:
        return 0
    x = x - x.mean()
    if x.std() < 1e-12:
        return 0
    n = x.size
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[: min(max_period, n // 3) + 1]
    acf = acf / acf[0]
    peaks, _ = signal.find_peaks(acf[MIN_PERIOD:], height=0.2, prominence=0.15)
    if peaks.size == 0:
        return 0
    return int(peaks[np.argmax(acf[MIN_PERIOD:][peaks])] + MIN_PERIOD)


def _shifted(x: np.ndarray, lag: int) -> np.ndarray:
    """``x[t - lag]`` with NaN where it falls outside the series."""
    out = np.full_like(x, np.nan)
    if lag > 0:
        out[lag:] = x[:-lag]
    else:
        out[:lag] = x[-lag:]
    return out


def _neighbour_median(x: np.ndarray, span: int, causal: bool) -> np.ndarray:
    """Median of each point's ``span - 1`` neighbours, the point itself excluded (so a
    residual is never zero by construction, which would shrink the MAD): the centred
    neighbours, or the preceding ones in causal mode. Edges repeat the end values."""
    half = span // 2
    if causal:
        views = sliding_window_view(np.pad(x, (span - 1, 0), mode="edge"), span)[:, : span - 1]
    else:
        views = sliding_window_view(np.pad(x, half, mode="edge"), span)
        views = views[:, [k for k in range(span) if k != half]]
    return np.median(views, axis=1)


def _long_median(x: np.ndarray, span: int, causal: bool) -> np.ndarray:
    """Running median over ``span`` points (centred, or trailing in causal mode)."""
    origin = (span - 1) // 2 if causal else 0
    return ndimage.median_filter(x, size=span, origin=origin, mode="nearest")


@dataclass
class FeatureProfile:
    """Residuals of one series for every feature, plus how to scale them.

    ``residual[f][t]`` is signed; ``zscores(f, start, end)`` returns |residual| / scale for a
    window, the scale coming from the whole series or from the causal prefix.
    """

    n: int
    causal: bool
    period: int
    residual: dict[str, np.ndarray]
    min_reference: int = MIN_PREFIX
    _scales: dict[tuple[str, int], float] = field(default_factory=dict, repr=False)
    _tails: dict[tuple[str, int, float], float] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls, values: np.ndarray, causal: bool = False, period_from: int | None = None, min_reference: int | None = None
    ) -> "FeatureProfile":
        """Compute every residual; the period is estimated on ``values[:period_from]`` (the
        training prefix in causal mode) or on the start of the series. In causal mode the
        scales use at least the first ``min_reference`` points (the training prefix, given
        in advance in TSB-AD's protocol), so early windows are not judged on a few points."""
        x = within_safe_range(np.asarray(values, dtype=float))
        period = estimate_period(x[:period_from] if period_from else x)
        res = {
            "spike": x - _neighbour_median(x, SPIKE_SPAN, causal),
            "jump": np.diff(x, prepend=x[:1]),
            "level": x - _long_median(x, LEVEL_SPAN, causal),
            "global": x - 0.0,  # referenced to the (prefix) median when scaled
        }
        if period and 2 * period < x.size:
            lags = (period, 2 * period, 3 * period) if causal else (period, 2 * period, -period, -2 * period)
            with warnings.catch_warnings():  # all-NaN columns at the edges fall back to x
                warnings.simplefilter("ignore", RuntimeWarning)
                ref = np.nanmedian(np.stack([_shifted(x, lag) for lag in lags]), axis=0)
            ref = np.where(np.isnan(ref), x, ref)
            res["seasonal"] = x - ref
        return cls(n=x.size, causal=causal, period=period, residual=res, min_reference=max(min_reference or 0, MIN_PREFIX))

    @property
    def features(self) -> list[str]:
        return [f for f in FEATURES if f in self.residual]

    def _reference_end(self, start: int) -> int:
        """End of the prefix the scales come from: the whole series, or (causal) the prefix
        before the window rounded down to a power of two, so scales are re-estimated only
        O(log n) times."""
        if not self.causal:
            return self.n
        prefix = max(start, MIN_PREFIX)
        return min(self.n, max(1 << int(np.log2(prefix)), self.min_reference))

    def center_and_scale(self, feature: str, start: int) -> tuple[float, float]:
        """(centre, scale) of ``feature``'s residual for a window starting at ``start``."""
        ref_end = self._reference_end(start)
        key = (feature, ref_end)
        if key not in self._scales:
            r = self.residual[feature][:ref_end]
            centre = float(np.median(r)) if feature == "global" else 0.0
            self._scales[key] = (centre, robust_scale(r - centre))
        return self._scales[key]

    def zscores(self, feature: str, start: int, end: int, scale_at: int | None = None) -> np.ndarray:
        """|residual - centre| / scale on ``[start, end)``, scaled as for a window starting
        at ``scale_at`` (default ``start``)."""
        centre, scale = self.center_and_scale(feature, start if scale_at is None else scale_at)
        return np.abs(self.residual[feature][start:end] - centre) / scale

    def tail_threshold(self, feature: str, start: int, rate: float) -> float:
        """The robust z that a fraction ``rate`` of the reference's points exceed, by a
        generalised Pareto fit of its upper tail (tools/calibration.py); the reference is
        the one the scales use (the whole series, or in causal mode the prefix before the
        window), so causal calibration reads only the past."""
        ref_end = self._reference_end(start)
        key = (feature, ref_end, float(rate))
        if key not in self._tails:
            from anomamind.tools.calibration import pot_threshold

            self._tails[key] = pot_threshold(self.zscores(feature, 0, ref_end, scale_at=start), rate)
        return self._tails[key]

    def signed(self, feature: str, start: int, end: int) -> np.ndarray:
        """Signed robust z-scores (positive = above the reference)."""
        centre, scale = self.center_and_scale(feature, start)
        return (self.residual[feature][start:end] - centre) / scale


def runs_above(z: np.ndarray, high: float, low: float, offset: int = 0) -> list[list[float]]:
    """Runs of ``z > low`` that contain at least one ``z > high`` (hysteresis), as
    ``[start, end, peak]`` with absolute inclusive indices."""
    above = z > low
    if not above.any():
        return []
    edges = np.diff(np.concatenate(([0], above.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    runs = []
    for s, e in zip(starts, ends):
        peak = float(z[s : e + 1].max())
        if peak > high:
            runs.append([int(s + offset), int(e + offset), peak])
    return runs


def spectral_residual_saliency(values: np.ndarray, average: int = 3) -> np.ndarray:
    """Spectral-residual saliency map (Ren et al., 2019) of a window, normalised to its
    mean; the locator's 'where does the eye go' signal."""
    x = within_safe_range(np.asarray(values, dtype=float))
    if x.size < 4 or np.ptp(x) == 0:
        return np.zeros_like(x)
    spectrum = np.fft.fft(x - x.mean())
    amplitude = np.abs(spectrum)
    amplitude[0] = amplitude[1:].mean()  # the removed mean must not dominate the map
    log_amp = np.log(amplitude + 1e-12 * amplitude.max() + 1e-300)
    residual = log_amp - ndimage.uniform_filter1d(log_amp, average, mode="nearest")
    saliency = np.abs(np.fft.ifft(np.exp(residual + 1j * np.angle(spectrum))))
    return saliency / (saliency.mean() + 1e-12)


# ----------------------------------------------------------------------------- cache


#: Profiles of the most recently used series (each entry holds its array, so ids cannot be reused).
_PROFILE_CACHE_SIZE = 32
_profiles: "OrderedDict[tuple[int, bool, int | None], tuple[np.ndarray, FeatureProfile]]" = OrderedDict()


def series_profile(values: np.ndarray, causal: bool = False, train_end: int | None = None) -> FeatureProfile:
    """The :class:`FeatureProfile` of a series, built once per (array object, mode, training
    prefix) and shared by every window and every tool call over it. In causal mode the
    period is estimated on the training prefix (or the first quarter, at least 100 points)
    and the scales use at least the training prefix. Treat ``values`` as immutable."""
    key = (id(values), bool(causal), train_end)
    hit = _profiles.get(key)
    if hit is not None and hit[0] is values:
        _profiles.move_to_end(key)
        return hit[1]
    period_from = (train_end or max(len(values) // 4, 100)) if causal else None
    profile = FeatureProfile.build(values, causal=causal, period_from=period_from, min_reference=train_end)
    _profiles[key] = (values, profile)
    while len(_profiles) > _PROFILE_CACHE_SIZE:
        _profiles.popitem(last=False)
    return profile


# ----------------------------------------------------------------------------- tools


def feature_runs(
    ctx: ToolContext,
    *,
    feature: Literal["spike", "jump", "level", "seasonal", "global"] = "spike",
    threshold: float = 6.0,
    low: float | None = None,
    start: int | None = None,
    end: int | None = None,
) -> dict[str, Any]:
    """Runs of points whose robust z-score of one residual feature exceeds a threshold
    (hysteresis: a run extends while z stays above ``low`` and needs one point above
    ``threshold``). Features: spike: deviation from the median of the 4 neighbouring points
    (point anomalies); jump: first difference (abrupt changes); level: deviation from a
    51-point running median (level shifts, sequence anomalies); seasonal: deviation from
    the same phase in neighbouring periods (only when the series has a period); global:
    deviation from the series median (global outliers). Scales are 1.4826 * MAD of the
    feature over the series (causal mode: over the prefix). The range is clipped to the
    window.

    Args:
        feature: spike, jump, level, seasonal or global.
        threshold: robust z a run must exceed at least once.
        low: z above which a run extends (default: the threshold).
        start: first index to examine (absolute, inclusive; default: window start).
        end: last index to examine (absolute, inclusive; default: window end).
    """
    if start is not None or end is not None:
        ctx.resolve_range(start, end)  # type and readability checks; then clipped to the window
    profile = series_profile(ctx.values, ctx.causal, ctx.train_end)
    if feature not in profile.residual:
        raise ToolArgumentError(f"feature {feature!r} not available (have {profile.features})")
    w0, w1 = ctx.window_start, ctx.window_end
    lo = w0 if start is None else max(w0, int(start))
    hi = w1 if end is None else min(w1, int(end) + 1)
    if lo >= hi:
        raise ToolArgumentError(f"range [{start}, {end}] is outside the window [{w0}, {w1 - 1}]")
    z = profile.zscores(feature, w0, w1)[lo - w0 : hi - w0]
    threshold = float(threshold)
    low = threshold if low is None else float(low)
    peak = int(np.argmax(z))
    signed = profile.signed(feature, lo, lo + peak + 1)[-1]
    runs = runs_above(z, threshold, low, offset=lo)
    return {
        "feature": feature,
        "max_z": float(z[peak]),
        "max_at": lo + peak,
        "direction": "up" if signed >= 0 else "down",
        "runs": runs,
        "summary": f"{feature}: {len(runs)} run(s) above z {threshold:g}; max z {float(z[peak]):.1f} at {lo + peak}",
    }


def raw_value_outliers(ctx: ToolContext, *, threshold: float = 6.0, low: float | None = None) -> dict[str, Any]:
    """Runs of the window's raw values whose robust z-score against the window's own median
    (1.4826 * MAD of the window) exceeds a threshold. Uses no series context, so it stays
    available when feature extraction is switched off.

    Args:
        threshold: robust z a run must exceed at least once.
        low: z above which a run extends (default: the threshold).
    """
    x = ctx.values[ctx.window_start : ctx.window_end]
    med = float(np.median(x))
    mad = 1.4826 * float(np.median(np.abs(x - med)))
    scale = mad if mad > 1e-12 else (float(np.std(x)) or 1e-9)
    z = np.abs(x - med) / scale
    threshold = float(threshold)
    low = threshold if low is None else float(low)
    runs = runs_above(z, threshold, low, offset=ctx.window_start)
    return {
        "feature": "raw",
        "max_z": float(z.max()),
        "max_at": ctx.window_start + int(np.argmax(z)),
        "runs": runs,
        "summary": f"raw values: {len(runs)} run(s) above z {threshold:g}; max z {float(z.max()):.1f}",
    }
