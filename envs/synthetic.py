"""TODS-style synthetic series: the embedded default data set (no download needed).

Follows the taxonomy of Lai et al., "Revisiting Time Series Outlier Detection: Definitions
and Benchmarks" (NeurIPS 2021 datasets and benchmarks track, the TODS benchmark): a base
signal made of sines of several periods plus noise (and optionally a trend), into which
five kinds of anomaly are injected:

- ``point-global``: a single point beyond the normal range of the whole series;
- ``point-contextual``: a single point inside the global range but wrong for its
  neighbourhood (e.g. a high value in a trough);
- ``collective-shapelet``: a segment whose waveform changes (square, sawtooth, flattened
  or noisy) while the period stays;
- ``collective-seasonal``: a segment whose seasonal period changes;
- ``collective-trend``: a segment with an added linear drift that then snaps back.

Each anomaly draws its own strength around ``magnitude`` so a data set mixes obvious and
subtle cases. Everything is driven by a seeded ``numpy.random.Generator``: the same seed
gives the same series, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from anomamind.types import DataError, Series

ALL_KINDS: tuple[str, ...] = (
    "point-global",
    "point-contextual",
    "collective-shapelet",
    "collective-seasonal",
    "collective-trend",
)
#: The knowledge memory's type (``anomamind.types.ANOMALY_TYPES``) for each generated kind.
KIND_TO_TYPE: dict[str, str] = {
    "point-global": "point-global",
    "point-contextual": "point-contextual",
    "collective-shapelet": "shapelet-deviation",
    "collective-seasonal": "seasonal-deviation",
    "collective-trend": "trend-change",
}
DATASET = "SYNTHETIC"
DOMAIN = "Synthetic"
#: Segment length range (points) of each collective kind.
_SEGMENT_LENGTHS: dict[str, tuple[int, int]] = {
    "collective-shapelet": (20, 80),
    "collective-seasonal": (50, 150),
    "collective-trend": (40, 160),
}
_SHAPES = ("square", "sawtooth", "flat", "noisy")
_GAP = 30  # minimum number of normal points between two anomalies


@dataclass
class _Base:
    """The clean signal's parts, kept so anomalies can be drawn relative to them."""

    periods: np.ndarray
    amplitudes: np.ndarray
    phases: np.ndarray
    level: float
    slope: float
    noise_std: float
    normal_range: tuple[float, float] = (0.0, 0.0)  # min/max of the noisy signal before injection

    def seasonal(self, t: np.ndarray, rate: float = 1.0, t0: int = 0) -> np.ndarray:
        """Sum of sines; after ``t0`` the phase advances ``rate`` times as fast (continuous)."""
        warped = t0 + (t - t0) * rate
        return sum(
            a * np.sin(2 * np.pi * warped / p + ph) for p, a, ph in zip(self.periods, self.amplitudes, self.phases)
        )

    @property
    def amplitude(self) -> float:
        return float(self.amplitudes.sum())


def generate_series(
    seed: int,
    length: int = 5000,
    kinds: tuple[str, ...] = ALL_KINDS,
    n_anomalies_per_kind: int = 1,
    magnitude: float = 1.0,
    name: str | None = None,
    *,
    noise: float = 0.08,
    trend: bool | None = None,
) -> Series:
    """One labelled synthetic series with ``n_anomalies_per_kind`` anomalies of each kind.

    ``magnitude`` scales every anomaly (about 0.3 is subtle, 1 clear, 2 blatant); each one
    draws its own strength in ``magnitude * [0.4, 1.6]``. ``noise`` is the noise standard
    deviation relative to the seasonal amplitude; ``trend`` adds a global linear trend
    (None: decided by the seed). ``meta["anomalies"]`` lists ``{kind, type, start, end,
    magnitude, detail}`` with ``end`` inclusive, like ``Interval``.
    """
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if unknown:
        raise DataError(f"unknown anomaly kind(s) {unknown}; known: {list(ALL_KINDS)}")
    if magnitude <= 0:
        raise DataError(f"magnitude must be positive, got {magnitude}")
    if length < 1 or seed < 0:
        raise DataError(f"length must be positive and seed non-negative (got length={length}, seed={seed})")
    if n_anomalies_per_kind < 0:
        raise DataError(f"n_anomalies_per_kind must be >= 0, got {n_anomalies_per_kind}")
    rng = np.random.default_rng(seed)
    base = _draw_base(rng, length, noise, trend)
    t = np.arange(length, dtype=np.float64)
    clean = base.level + base.slope * t + base.seasonal(t)
    values = clean + rng.normal(0.0, base.noise_std, length)
    base.normal_range = (float(values.min()), float(values.max()))

    plan = [k for k in kinds for _ in range(n_anomalies_per_kind)]
    rng.shuffle(plan)
    clean_prefix = length // 4  # keep the training prefix normal, as TSB-AD's split expects
    spans = _place(rng, plan, length, clean_prefix)
    anomalies = []
    for kind, (start, end) in zip(plan, spans):
        strength = float(magnitude * rng.uniform(0.4, 1.6))
        detail = _INJECT[kind](rng, values, clean, base, start, end, strength)
        anomalies.append(
            {"kind": kind, "type": KIND_TO_TYPE[kind], "start": start, "end": end - 1, "magnitude": round(strength, 3), **detail}
        )
    anomalies.sort(key=lambda a: a["start"])
    labels = np.zeros(length, dtype=np.int8)
    for a in anomalies:
        labels[a["start"] : a["end"] + 1] = 1

    first = anomalies[0]["start"] if anomalies else None
    train_end = _train_end(length, first)
    if name is None:
        name = tsbad_name(0, DATASET, seed, DOMAIN, train_end, first if first is not None else 0)
    return Series(
        values=values,
        labels=labels,
        name=name,
        dataset=DATASET,
        domain=DOMAIN,
        train_end=train_end,
        first_anomaly=first,
        source=f"synthetic:seed={seed}",
        meta={
            "anomalies": anomalies,
            "generator": {
                "seed": seed,
                "length": length,
                "kinds": list(kinds),
                "n_anomalies_per_kind": n_anomalies_per_kind,
                "magnitude": magnitude,
                "noise": noise,
                "periods": [round(float(p), 2) for p in base.periods],
                "trend_slope": base.slope,
            },
        },
    )


def generate_dataset(n_series: int = 8, seed: int = 0, length: int = 5000) -> list[Series]:
    """The embedded default data set: ``n_series`` series whose kinds rotate through all five.

    Each series gets two or three kinds (more when there are too few series to cover all
    five), one or two anomalies per kind, its own noise level and an overall magnitude
    between subtle and clear, so a detector is tested on easy and hard cases alike.
    """
    if n_series < 1:
        raise DataError(f"n_series must be at least 1, got {n_series}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 20211206]))
    per_series = max(2, math.ceil(len(ALL_KINDS) / n_series))
    out = []
    cursor = 0
    for i in range(n_series):
        n_kinds = min(len(ALL_KINDS), per_series + int(rng.integers(0, 2)))
        kinds = tuple(ALL_KINDS[(cursor + j) % len(ALL_KINDS)] for j in range(n_kinds))
        cursor += n_kinds
        series_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        series = generate_series(
            series_seed,
            length=length,
            kinds=kinds,
            n_anomalies_per_kind=int(rng.integers(1, 3)),
            magnitude=float(rng.uniform(0.5, 1.3)),
            noise=float(rng.uniform(0.04, 0.15)),
        )
        series.name = tsbad_name(i + 1, DATASET, i + 1, DOMAIN, series.train_end, series.first_anomaly or 0)
        series.meta["generator"]["dataset_seed"] = seed
        out.append(series)
    return out


def tsbad_name(index: int, dataset: str, series_id: int, domain: str, train_end: int, first_anomaly: int) -> str:
    """A TSB-AD-U style file stem: ``NNN_<DS>_id_<k>_<Domain>_tr_<T>_1st_<F>``."""
    for what, text in (("dataset", dataset), ("domain", domain)):
        if "_" in text or not text:
            raise DataError(f"{what} {text!r} cannot be used in a TSB-AD-U file name (empty or contains '_')")
    return f"{index:03d}_{dataset}_id_{series_id}_{domain}_tr_{train_end}_1st_{first_anomaly}"


def write_tsbad_csv(series: Series, directory: str | Path) -> Path:
    """Write ``series`` as a TSB-AD-U CSV (``Data,Label``) into ``directory``; return the path.

    The file name is the series name when that already follows the TSB-AD-U pattern,
    otherwise one is built from the series' fields.
    """
    from anomamind.envs.loaders import parse_tsbad_name

    if series.labels is None:
        raise DataError(f"{series.name}: cannot write a TSB-AD-U file without labels")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = series.name
    if parse_tsbad_name(stem) is None:
        first = int(np.argmax(series.labels)) if series.labels.any() else 0
        stem = tsbad_name(
            int(series.meta.get("index", 0)),
            series.dataset.replace("_", "-") or DATASET,
            int(series.meta.get("id", 0)),
            series.domain.replace("_", "-") or DOMAIN,
            series.train_end if series.train_end is not None else _train_end(len(series), first),
            series.first_anomaly if series.first_anomaly is not None else first,
        )
    path = directory / f"{stem}.csv"
    pd.DataFrame({"Data": series.values, "Label": series.labels.astype(np.int64)}).to_csv(path, index=False)
    return path


# --- internals -------------------------------------------------------------------------


def _draw_base(rng: np.random.Generator, length: int, noise: float, trend: bool | None) -> _Base:
    n_components = int(rng.integers(1, 4))
    periods = np.sort(rng.uniform(20.0, 150.0, n_components))[::-1]
    amplitudes = np.concatenate([[1.0], rng.uniform(0.15, 0.6, n_components - 1)])
    phases = rng.uniform(0.0, 2 * np.pi, n_components)
    with_trend = bool(rng.random() < 0.3) if trend is None else trend
    total_drift = rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0]) if with_trend else 0.0
    return _Base(
        periods=periods,
        amplitudes=amplitudes,
        phases=phases,
        level=float(rng.uniform(-1.0, 1.0)),
        slope=float(total_drift / max(length, 1)),
        noise_std=float(noise * amplitudes.sum()),
    )


def _train_end(length: int, first_anomaly: int | None) -> int:
    """TSB-AD's split rule ``max(500, min(L/4, F-100))``, kept before the first anomaly."""
    quarter = length // 4
    if first_anomaly is None:
        return max(1, quarter)
    end = max(500, min(quarter, first_anomaly - 100))
    return max(1, min(end, first_anomaly, length))


def _place(rng: np.random.Generator, plan: list[str], length: int, lo: int) -> list[tuple[int, int]]:
    """Non-overlapping ``[start, end)`` spans for the planned kinds, all after ``lo``."""
    spans: list[tuple[int, int]] = []
    room = (length - lo) // max(1, len(plan))  # short series get shorter segments and gaps
    gap = min(_GAP, max(1, room // 4))
    for kind in plan:
        lo_len, hi_len = _SEGMENT_LENGTHS.get(kind, (1, 1))
        hi_len = max(1, min(hi_len, room - 2 * gap))
        lo_len = min(lo_len, hi_len)
        for _attempt in range(500):
            span_len = int(rng.integers(lo_len, hi_len + 1))
            if length - span_len <= lo:
                raise DataError(f"a series of {length} points is too short for a {kind} anomaly")
            start = int(rng.integers(lo, length - span_len))
            end = start + span_len
            if all(end + gap <= s or start >= e + gap for s, e in spans):
                spans.append((start, end))
                break
        else:
            raise DataError(
                f"cannot place {len(plan)} anomalies in a series of {length} points; "
                "use a longer series or fewer anomalies"
            )
    return spans


def _point_global(rng, values, clean, base, start, end, strength) -> dict:
    centre = float(np.mean(clean))
    low, high = base.normal_range
    reach = max(high - centre, centre - low)
    sign = float(rng.choice([-1.0, 1.0]))
    values[start] = centre + sign * (reach + strength * 0.6 * base.amplitude)
    return {"detail": "above" if sign > 0 else "below"}


def _point_contextual(rng, values, clean, base, start, end, strength) -> dict:
    # Push the point across its local level: wrong for its neighbourhood, yet clipped to
    # the global range so that it is not a global outlier.
    half = int(base.periods[0] // 2)
    local_level = float(np.mean(clean[max(0, start - half) : start + half + 1]))
    sign = 1.0 if values[start] < local_level else -1.0
    shifted = values[start] + sign * strength * 0.9 * base.amplitude
    values[start] = float(np.clip(shifted, *base.normal_range))
    return {"detail": "up" if sign > 0 else "down"}


def _collective_shapelet(rng, values, clean, base, start, end, strength) -> dict:
    t = np.arange(start, end, dtype=np.float64)
    seasonal = base.seasonal(t)
    shape = str(rng.choice(_SHAPES))
    phase = 2 * np.pi * t / base.periods[0] + base.phases[0]
    if shape == "square":
        other = base.amplitude * np.sign(np.sin(phase))
    elif shape == "sawtooth":
        other = base.amplitude * (2.0 * np.mod(phase / (2 * np.pi), 1.0) - 1.0)
    elif shape == "flat":
        other = np.full_like(t, float(np.mean(seasonal)))
    else:  # noisy: the seasonal shape drowned in much stronger noise
        other = seasonal + rng.normal(0.0, 0.5 * base.amplitude, t.size)
    weight = float(np.clip(0.5 * strength, 0.25, 1.0))
    values[start:end] += weight * (other - seasonal)
    return {"detail": shape}


def _collective_seasonal(rng, values, clean, base, start, end, strength) -> dict:
    t = np.arange(start, end, dtype=np.float64)
    rate = 1.0 + strength * rng.uniform(0.5, 1.0)
    if rng.random() < 0.5:
        rate = 1.0 / rate
    values[start:end] += base.seasonal(t, rate=rate, t0=start) - base.seasonal(t)
    return {"detail": f"period x{1.0 / rate:.2f}"}


def _collective_trend(rng, values, clean, base, start, end, strength) -> dict:
    sign = float(rng.choice([-1.0, 1.0]))
    drift = sign * strength * 0.8 * base.amplitude
    values[start:end] += np.linspace(0.0, drift, end - start)
    return {"detail": f"drift {drift:+.2f}"}


_INJECT = {
    "point-global": _point_global,
    "point-contextual": _point_contextual,
    "collective-shapelet": _collective_shapelet,
    "collective-seasonal": _collective_seasonal,
    "collective-trend": _collective_trend,
}
