"""What a tool may look at: the series, the window under analysis, and its reference context.

A :class:`ToolContext` is built once per window (``ToolContext.for_window``) and handed to
every tool. Tools analyse an absolute, inclusive index range (default: the window) and
compare it with *reference* statistics ("global" statistics) computed over
``values[:reference_end]``:

* non-causal mode (the paper's setting, ``causal=False``): the reference is the whole
  series and tools may read any index;
* causal mode (``causal=True``): the reference ends at the window end (or an earlier cut
  such as the training prefix, if given), and tools may read nothing after
  ``max(reference_end, window_end)``, so no statistic peeks into the future.

Reference statistics are computed once per (series array, reference_end) and cached in a
:class:`SeriesFeatures` bundle shared by every context over the same array, so running the
toolkit window after window costs O(window) per window, not O(series). The bundle treats
the values array as immutable: build a new array if the data change.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np
from scipy.special import ndtri

from anomamind.types import Series, Window


class ToolArgumentError(ValueError):
    """A tool argument the model got wrong; the message is shown to the model as is."""


@dataclass(frozen=True)
class Bounds:
    """Numeric limits of a tool parameter, used as ``Annotated[float, Bounds(minimum=0)]``.

    The registry copies them into the JSON schema and checks them before the call.
    """

    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None

    def check(self, name: str, value: float) -> None:
        """Raise :class:`ToolArgumentError` when ``value`` breaks a limit."""
        if self.minimum is not None and value < self.minimum:
            raise ToolArgumentError(f"{name} must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ToolArgumentError(f"{name} must be <= {self.maximum}, got {value}")
        if self.exclusive_minimum is not None and value <= self.exclusive_minimum:
            raise ToolArgumentError(f"{name} must be > {self.exclusive_minimum}, got {value}")


@dataclass
class ToolContext:
    """The data a tool call may use. Indices everywhere are absolute series indices.

    ``window_end`` is exclusive; ``reference_end`` (exclusive) bounds the data that
    "global" statistics use (default: the whole series, or the window end when causal).
    """

    values: np.ndarray
    window_start: int
    window_end: int
    reference_end: int | None = None
    dataset: str = "unknown"
    domain: str = "unknown"
    causal: bool = False
    series_name: str = "series"
    #: The series' training prefix (TSB-AD's ``tr_N``), if known: causal feature profiles
    #: (tools/features_profile.py) estimate their period and scales on at least that prefix.
    train_end: int | None = None
    _features: "SeriesFeatures | None" = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # keep the caller's array object when it is already 1-D float64: the series caches
        # are keyed on it, and a fresh view per window would miss them every time. (np.asarray
        # with a dtype returns a new view for an equal but not identical dtype, e.g. of an
        # array unpickled in a worker process, so compare with == before converting.)
        values = self.values
        if not (isinstance(values, np.ndarray) and values.dtype == np.float64 and values.ndim == 1):
            values = np.asarray(values, dtype=np.float64).reshape(-1)
        self.values = values
        n = self.values.size
        if n == 0:
            raise ValueError(f"{self.series_name}: cannot build a tool context on an empty series")
        if not 0 <= self.window_start < self.window_end <= n:
            raise ValueError(
                f"{self.series_name}: window [{self.window_start}, {self.window_end}) "
                f"is not inside a series of {n} points"
            )
        if self.reference_end is None:
            self.reference_end = self.window_end if self.causal else n
        if not 0 < self.reference_end <= n:
            raise ValueError(f"{self.series_name}: reference_end {self.reference_end} outside 1..{n}")
        # the shared bundle checks the values once per series (NaN/inf are refused)
        self._features = series_features(self.values, int(self.reference_end), self.series_name)

    @classmethod
    def for_window(
        cls, series: Series, window: Window, causal: bool = False, reference_end: int | None = None
    ) -> "ToolContext":
        """Context for ``window`` of ``series`` (the values array is shared, not copied)."""
        return cls(
            values=series.values,
            window_start=window.start,
            window_end=window.end,
            reference_end=reference_end,
            dataset=series.dataset,
            domain=series.domain,
            causal=causal,
            series_name=series.name,
            train_end=series.train_end,
        )

    @property
    def visible_end(self) -> int:
        """One past the last index a tool may read."""
        if self.causal:
            return max(int(self.reference_end), self.window_end)
        return int(self.values.size)

    @property
    def features(self) -> "SeriesFeatures":
        """The cached reference-statistics bundle of this context's series."""
        assert self._features is not None  # set in __post_init__
        return self._features

    def resolve_range(self, start: int | None, end: int | None) -> tuple[int, int]:
        """Absolute inclusive ``(start, end)``; defaults to the window; checks bounds."""
        start = self.window_start if start is None else start
        end = self.window_end - 1 if end is None else end
        for name, value in (("start", start), ("end", end)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ToolArgumentError(f"{name} must be an integer index, got {value!r}")
        start, end = int(start), int(end)
        last = self.visible_end - 1
        if start > end:
            raise ToolArgumentError(f"start ({start}) is after end ({end})")
        if start < 0 or end > last:
            raise ToolArgumentError(
                f"range [{start}, {end}] is outside the readable indices 0..{last}"
                + (" (causal mode: no data after the window)" if self.causal else "")
            )
        return start, end

    def visible(self) -> np.ndarray:
        """The values a tool may read (a view, never a copy)."""
        return self.values[: self.visible_end]


def robust_location_scale(x: np.ndarray) -> tuple[float, float]:
    """Median and a robust standard deviation (1.4826 * MAD, with fallbacks).

    Quantised or mostly constant data have MAD 0; then the mean absolute deviation
    (scaled by 1.2533) is used, and finally a tiny floor so z-scores stay finite.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return 0.0, 1.0
    med = float(np.median(x))
    dev = np.abs(x - med)
    scale = 1.4826 * float(np.median(dev))
    if scale <= 0.0:
        scale = 1.2533 * float(dev.mean())
    floor = 1e-9 * max(1.0, abs(med))
    return med, max(scale, floor)


def tail_scale(x: np.ndarray, quantile: float = 0.99) -> float:
    """A scale for heavy-tailed residuals: the larger of the robust std and
    ``quantile(|x - median|) / z(quantile)``, so that about ``1 - quantile`` of ``x``
    exceeds the Gaussian z of that quantile (2.58 for 0.99) when tails are heavy.
    """
    med, scale = robust_location_scale(x)
    if np.asarray(x).size == 0:
        return scale
    tail = float(np.quantile(np.abs(np.asarray(x) - med), quantile)) / float(ndtri(0.5 + quantile / 2))
    return max(scale, tail)


class SeriesFeatures:
    """Reference statistics of one series, computed lazily and once.

    Everything is computed on ``values[:reference_end]``; statistics that depend on a
    parameter (period, width) are memoised per parameter with :meth:`cached`. Built through :func:`series_features` so that contexts share one bundle.
    """

    #: At most this many trailing reference points feed period and seasonal estimates.
    SEASONAL_REFERENCE_CAP = 20_000

    def __init__(self, values: np.ndarray, reference_end: int) -> None:
        self.values = values
        self.reference_end = reference_end
        self.reference = values[:reference_end]
        self._cache: dict[Any, Any] = {}

    @cached_property
    def value_location_scale(self) -> tuple[float, float]:
        return robust_location_scale(self.reference)

    @cached_property
    def value_mean_std(self) -> tuple[float, float]:
        std = float(self.reference.std())
        return float(self.reference.mean()), std if std > 0 else 1e-9 * max(1.0, abs(float(self.reference.mean())))

    @cached_property
    def sorted_reference(self) -> np.ndarray:
        return np.sort(self.reference)

    def diff_location_scale(self, order: int = 1) -> tuple[float, float]:
        """Median and tail scale of the reference's differences.

        The tail scale (see :func:`tail_scale`) equals the robust std for Gaussian steps
        but grows for quantised or bursty KPIs whose steps are mostly 0, where a MAD-based
        z-score would call every ordinary step an outlier.
        """

        def compute() -> tuple[float, float]:
            d = np.diff(self.reference, n=order)
            return (robust_location_scale(d)[0], tail_scale(d)) if d.size else (0.0, 1.0)

        return self.cached(("diff", order), compute)

    def diff_mean_std(self, order: int = 1) -> tuple[float, float]:
        """Mean and standard deviation of the reference's differences."""

        def compute() -> tuple[float, float]:
            d = np.diff(self.reference, n=order)
            return (float(d.mean()), float(d.std()) or 1e-9) if d.size else (0.0, 1.0)

        return self.cached(("diff_mean_std", order), compute)

    @cached_property
    def noise_scale(self) -> float:
        """Point-noise standard deviation, estimated as robust scale of diffs / sqrt(2)."""
        return self.diff_location_scale(1)[1] / np.sqrt(2.0)

    @cached_property
    def period(self) -> tuple[int | None, float]:
        """(dominant period or None, its autocorrelation) of the trailing reference."""
        from anomamind.tools.features_global import estimate_period

        return estimate_period(self.reference[-self.SEASONAL_REFERENCE_CAP :])

    def cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        """Memoise ``compute()`` under ``key`` for this bundle (per-period or per-width statistics)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


#: Bundles of the most recently used series (each holds its array, so ids cannot be reused).
_BUNDLE_CACHE_SIZE = 32
_bundles: "OrderedDict[tuple[int, int], SeriesFeatures]" = OrderedDict()


def series_features(values: np.ndarray, reference_end: int, name: str = "series") -> SeriesFeatures:
    """The shared :class:`SeriesFeatures` of ``values`` (same array object -> same bundle).

    A new bundle checks that the values are finite (once per series, not per window).
    """
    key = (id(values), reference_end)
    bundle = _bundles.get(key)
    if bundle is not None and bundle.values is values:
        _bundles.move_to_end(key)
        return bundle
    if not np.isfinite(values).all():
        raise ValueError(f"{name}: values contain NaN or infinity; clean them first")
    bundle = SeriesFeatures(values, reference_end)
    _bundles[key] = bundle
    while len(_bundles) > _BUNDLE_CACHE_SIZE:
        _bundles.popitem(last=False)
    return bundle
