"""One entry point from a data spec on the command line to loaded series.

``anomamind bench/detect/prepare --data SPEC`` all call ``resolve_data``: SPEC is
``synthetic`` (the embedded default set), ``synthetic:N`` (N generated series), a single
CSV file (TSB-AD-U's ``Data,Label``, or a user's own export without labels: see
envs/loaders.py), a folder of them (with or without dataset subfolders), or an EasyTSAD
root (detected from its ``UTS/<DS>/<series>/test.npy`` layout).
"""

from __future__ import annotations

from pathlib import Path

from anomamind.envs.loaders import LoadResult, is_easytsad_root, load_directory, load_easytsad, load_series
from anomamind.envs.synthetic import DATASET as SYNTHETIC_DATASET
from anomamind.envs.synthetic import generate_dataset
from anomamind.types import DataError

#: Number of series in the embedded default data set (``--data synthetic``).
DEFAULT_SYNTHETIC_SERIES = 8


def resolve_data(
    spec: str,
    *,
    datasets: list[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    nan_policy: str = "interpolate",
    min_length: int = 1,
    column: str | int | None = None,
) -> LoadResult:
    """Load the series a spec names; ``limit`` keeps the first K (by name) of each dataset.

    ``seed`` only affects synthetic specs; ``column`` picks the value column of CSV files
    (name or 0-based position). Bad files inside a folder are reported in the result's
    ``failures``; a spec that names nothing loadable raises ``DataError``.
    """
    if limit is not None and limit < 1:
        raise DataError(f"limit must be a positive number of series per dataset, got {limit}")
    spec = str(spec).strip()
    if spec.lower() == "synthetic" or spec.lower().startswith("synthetic:"):
        result = _synthetic(spec, seed, datasets)
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            if is_easytsad_root(path):
                result = load_easytsad(path, datasets=datasets, nan_policy=nan_policy, min_length=min_length)
            else:
                result = load_directory(
                    path, datasets=datasets, nan_policy=nan_policy, min_length=min_length, column=column
                )
        elif path.exists() or path.is_symlink():  # a file; a special or oversized one is refused by name
            series = load_series(path, nan_policy=nan_policy, min_length=min_length, column=column)
            _check_filter([series.dataset], datasets, spec)
            result = LoadResult(series=[series])
        else:
            raise DataError(
                f"data spec {spec!r}: no such file or folder; expected 'synthetic', 'synthetic:N', "
                "a CSV file, a folder of them, or an EasyTSAD root"
            )
    if limit is not None:
        result.series = _first_per_dataset(result.series, limit)
    return result


def _synthetic(spec: str, seed: int, datasets: list[str] | None) -> LoadResult:
    _check_filter([SYNTHETIC_DATASET], datasets, spec)
    n_series = DEFAULT_SYNTHETIC_SERIES
    if ":" in spec:
        count = spec.split(":", 1)[1].strip()
        if not count.isdigit() or int(count) < 1:
            raise DataError(f"data spec {spec!r}: expected 'synthetic:N' with N a positive integer")
        n_series = int(count)
    return LoadResult(series=generate_dataset(n_series=n_series, seed=seed))


def _check_filter(present: list[str], datasets: list[str] | None, spec: str) -> None:
    if not datasets:
        return
    wanted = {d.strip().lower() for d in datasets}
    if not wanted & {p.lower() for p in present}:
        raise DataError(f"data spec {spec!r} holds dataset(s) {sorted(set(present))}, not {sorted(datasets)}")


def _first_per_dataset(series: list, limit: int) -> list:
    kept, counts = [], {}
    for s in sorted(series, key=lambda s: (s.dataset, s.name)):
        if counts.get(s.dataset, 0) < limit:
            counts[s.dataset] = counts.get(s.dataset, 0) + 1
            kept.append(s)
    order = {id(s): i for i, s in enumerate(series)}
    return sorted(kept, key=lambda s: order[id(s)])
