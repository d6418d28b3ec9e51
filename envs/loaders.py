"""Load CSV files (TSB-AD-U or a user's own export) and EasyTSAD folders into ``Series``.

A CSV may be TSB-AD-U's ``Data,Label``, a value-only column with or without a header, or
``timestamp,value`` (the usual KPI export): labels are optional (a ``Label`` or
``is_anomaly`` column when present), a time column is parsed and kept, and ``column``
picks the value column when there are several. Every problem a user can have with a data
file (an ambiguous or missing value column, text where numbers should be, NaN/inf, labels
other than 0/1, an empty file, a series too short to window) becomes a ``DataError`` whose message starts with the file and says what is wrong,
never a raw pandas traceback. Directory loads report bad files (and duplicates) and load
the rest.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from anomamind.envs.data_files import open_data_file, read_data_file
from anomamind.types import DataError, Series

#: TSB-AD-U file names: ``NNN_<DS>_id_<k>_<Domain>_tr_<T>_1st_<F>.csv``.
TSBAD_NAME = re.compile(
    r"^(?P<index>\d+)_(?P<dataset>[^_]+)_id_(?P<id>\d+)_(?P<domain>[^_]+)"
    r"_tr_(?P<train_end>\d+)_1st_(?P<first_anomaly>\d+)(?:\.csv)?$"
)
#: Column names of the TSB-AD-U format.
VALUE_COLUMN = "Data"
LABEL_COLUMN = "Label"
#: Names (any case) recognised as the label column and as the time column of other CSVs.
LABEL_NAMES = ("label", "is_anomaly")
TIME_NAMES = ("timestamp", "time", "date", "datetime")
NAN_POLICIES = ("interpolate", "reject")


@dataclass
class LoadResult:
    """What a batch load produced: the good series, and what went wrong with the others.

    ``failures`` holds ``(path, message)`` for every file that was skipped (bad content,
    duplicates, files named in a file list but absent); ``duplicates`` additionally maps
    each skipped duplicate to the file it repeats.
    """

    series: list[Series] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.series)

    @property
    def datasets(self) -> list[str]:
        """The datasets present, sorted."""
        return sorted({s.dataset for s in self.series})

    def extend(self, other: "LoadResult") -> None:
        self.series.extend(other.series)
        self.failures.extend(other.failures)
        self.duplicates.extend(other.duplicates)


def parse_tsbad_name(filename: str | Path) -> dict | None:
    """Fields of a TSB-AD-U file name, or None if the name does not follow the pattern.

    Keys: ``index``, ``id``, ``train_end``, ``first_anomaly`` (ints), ``dataset``,
    ``domain`` (strings).
    """
    match = TSBAD_NAME.match(Path(str(filename)).name)
    if match is None:
        return None
    fields = match.groupdict()
    return {
        "index": int(fields["index"]),
        "dataset": fields["dataset"],
        "id": int(fields["id"]),
        "domain": fields["domain"],
        "train_end": int(fields["train_end"]),
        "first_anomaly": int(fields["first_anomaly"]),
    }


def load_series(
    path: str | Path,
    *,
    nan_policy: str = "interpolate",
    min_length: int = 1,
    dataset: str | None = None,
    column: str | int | None = None,
) -> Series:
    """Read one CSV into a validated ``Series`` (labels and timestamps when the file has them).

    Layouts: TSB-AD-U's ``Data,Label``; one numeric column with or without a header;
    ``timestamp,value`` (a column named timestamp/time/date/datetime, or one holding dates,
    is parsed into ``Series.timestamps``); any of these plus a ``Label``/``is_anomaly``
    column. ``column`` (a name, or a 0-based position) picks the value column; it is needed
    only when several numeric columns could be it. ``nan_policy`` decides what happens to
    NaN/inf values: ``"interpolate"`` fills them linearly (edges take the nearest valid
    value) and warns, ``"reject"`` raises. ``dataset`` overrides the dataset name; otherwise
    it comes from the file name, or from the parent folder when the name does not follow the
    TSB-AD pattern. A TSB-AD name whose ``tr_N`` exceeds the series (a file cut short) gets
    a warning and the training prefix clamped to the series.
    """
    path = Path(path)
    raw = read_data_file(path)
    return _series_from_bytes(
        path, raw, nan_policy=nan_policy, min_length=min_length, dataset=dataset, column=column
    )


def load_directory(
    root: str | Path,
    *,
    datasets: list[str] | None = None,
    file_list: str | Path | None = None,
    nan_policy: str = "interpolate",
    min_length: int = 1,
    progress: bool = False,
    column: str | int | None = None,
) -> LoadResult:
    """Load every ``*.csv`` under ``root`` (recursively), skipping and reporting bad files.

    ``datasets`` keeps files whose parent folder or name-parsed dataset matches one of the
    names (case-insensitive); a name that matches nothing is a ``DataError`` listing what
    is there. ``file_list`` is a CSV with a ``file_name`` column (TSB-AD's file lists):
    only those files are loaded, and listed files that are missing are reported. Files
    with the same content, or the same name in two folders, are loaded once; the later
    ones (in path order) are reported as duplicates. ``column`` picks the value column of
    every file, as in :func:`load_series`.
    """
    root = Path(root)
    _check_nan_policy(nan_policy)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    paths = sorted(root.rglob("*.csv"))  # special files too: reported, not silently skipped
    paths = [p for p in paths if not _is_file_list(p, root)]
    if not paths:
        raise DataError(f"{root}: no CSV files found")
    result = LoadResult()
    if file_list is not None:
        paths, missing = _apply_file_list(paths, Path(file_list))
        result.failures.extend((name, f"{name}: listed in {file_list} but not found under {root}") for name in missing)
    if datasets:
        paths = _filter_datasets(paths, root, datasets)

    seen_hash: dict[str, Path] = {}
    seen_name: dict[str, Path] = {}
    for path in _maybe_progress(paths, progress, desc=f"loading {root.name}"):
        try:
            raw = read_data_file(path)
        except DataError as err:
            result.failures.append((str(path), str(err)))
            continue
        digest = hashlib.sha256(raw).hexdigest()
        first = seen_hash.get(digest) or seen_name.get(path.name)
        if first is not None:
            why = "same content" if digest in seen_hash else "same file name"
            message = f"{path}: duplicate of {first} ({why}); skipped"
            result.failures.append((str(path), message))
            result.duplicates.append((str(path), str(first)))
            continue
        try:
            series = _series_from_bytes(
                path, raw, nan_policy=nan_policy, min_length=min_length, dataset=None, column=column
            )
        except DataError as err:
            result.failures.append((str(path), str(err)))
            continue
        series.meta["sha256"] = digest
        seen_hash[digest] = path
        seen_name[path.name] = path
        result.series.append(series)
    return result


def load_easytsad(
    root: str | Path,
    *,
    datasets: list[str] | None = None,
    nan_policy: str = "interpolate",
    min_length: int = 1,
) -> LoadResult:
    """Load the EasyTSAD layout ``UTS/<DS>/<series>/{train,test}.npy`` (+ ``*_label.npy``).

    ``root`` is the folder holding ``UTS`` or ``UTS`` itself. Each series is the train part
    followed by the test part, with ``train_end = len(train)``. A series folder with a
    missing or inconsistent file is reported in ``failures`` and skipped.
    """
    root = Path(root)
    _check_nan_policy(nan_policy)
    uts = root / "UTS" if (root / "UTS").is_dir() else root
    if not uts.is_dir():
        raise DataError(f"{root}: not a directory")
    dataset_dirs = sorted(d for d in uts.iterdir() if d.is_dir())
    if not dataset_dirs:
        raise DataError(f"{uts}: no dataset folders (expected UTS/<dataset>/<series>/train.npy ...)")
    if datasets:
        wanted = {d.strip().lower() for d in datasets}
        available = [d.name for d in dataset_dirs]
        unknown = sorted(w for w in wanted if w not in {a.lower() for a in available})
        if unknown:
            raise DataError(f"{uts}: no EasyTSAD dataset(s) {unknown}; available: {available}")
        dataset_dirs = [d for d in dataset_dirs if d.name.lower() in wanted]
    result = LoadResult()
    for dataset_dir in dataset_dirs:
        for series_dir in sorted(d for d in dataset_dir.iterdir() if d.is_dir()):
            try:
                result.series.append(_easytsad_series(series_dir, dataset_dir.name, nan_policy, min_length))
            except DataError as err:
                result.failures.append((str(series_dir), str(err)))
    if not result.series and not result.failures:
        raise DataError(f"{uts}: no series folders found under the dataset folders")
    return result


def is_easytsad_root(path: str | Path) -> bool:
    """True when ``path`` (or ``path/UTS``) holds ``<DS>/<series>/test.npy`` folders."""
    path = Path(path)
    uts = path / "UTS" if (path / "UTS").is_dir() else path
    return uts.is_dir() and any(uts.glob("*/*/test.npy"))


def dataset_of(path: Path, root: Path | None = None) -> str:
    """The dataset a file belongs to: from its TSB-AD name, else its parent folder."""
    parsed = parse_tsbad_name(path.name)
    if parsed is not None:
        return parsed["dataset"]
    if root is not None and path.parent.resolve() == root.resolve():
        return root.name
    return path.parent.name


def clean_values(
    path: Path | str, values: np.ndarray, nan_policy: str, column: str = VALUE_COLUMN, header_lines: int = 1
) -> np.ndarray:
    """Apply the NaN policy: interpolate NaN/inf linearly (with a warning) or reject them.
    ``header_lines`` (0 or 1) makes the line numbers in messages match the file."""
    _check_nan_policy(nan_policy)
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    count, first = int(bad.sum()), int(np.flatnonzero(bad)[0])
    what = f"{count} NaN/inf value(s) in column '{column}' (first at line {first + 1 + header_lines})"
    if nan_policy == "reject":
        raise DataError(f"{path}: {what}; nan_policy='reject'")
    if bad.all():
        raise DataError(f"{path}: every value in column '{column}' is NaN/inf")
    good = np.flatnonzero(~bad)
    filled = values.copy()
    filled[bad] = np.interp(np.flatnonzero(bad), good, values[good])
    warnings.warn(f"{path}: {what} linearly interpolated (nan_policy='interpolate')", stacklevel=3)
    return filled


def check_labels(path: Path | str, labels: np.ndarray, column: str = LABEL_COLUMN) -> np.ndarray:
    """Labels as int8 after checking every one is 0 or 1 (the message names ``path``)."""
    labels = np.asarray(labels, dtype=np.float64)
    ok = (labels == 0) | (labels == 1)
    if not ok.all():
        bad_rows = np.flatnonzero(~ok)
        found = sorted({("NaN" if np.isnan(v) else repr(float(v))) for v in labels[bad_rows][:20]})
        raise DataError(
            f"{path}: labels must be 0 or 1; column '{column}' has {bad_rows.size} other "
            f"value(s) {found[:5]} (first at line {int(bad_rows[0]) + 2})"
        )
    return labels.astype(np.int8)


# --- internals -------------------------------------------------------------------------


def _check_nan_policy(nan_policy: str) -> None:
    if nan_policy not in NAN_POLICIES:
        raise DataError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")


def _series_from_bytes(
    path: Path, raw: bytes, *, nan_policy: str, min_length: int, dataset: str | None, column: str | int | None = None
) -> Series:
    _check_nan_policy(nan_policy)
    if not raw.strip():
        raise DataError(
            f"{path}: empty file (expected rows of numbers, with a header such as 'Data,Label' or "
            "'timestamp,value' or none)"
        )
    frame, header_lines = _parse_csv(path, raw)
    columns = _pick_columns(path, frame, column)
    values = _numeric_column(path, frame, columns.value, header_lines)
    n_non_finite = int(np.count_nonzero(~np.isfinite(values)))
    values = clean_values(path, values, nan_policy, columns.value, header_lines)
    labels = None
    if columns.label is not None:
        labels = check_labels(path, _numeric_column(path, frame, columns.label, header_lines), columns.label)
    timestamps = _time_column(path, frame, columns.time, header_lines) if columns.time is not None else None
    if values.size < min_length:
        raise DataError(
            f"{path}: series has {values.size} points, shorter than the minimum of {min_length} "
            "(one window)"
        )
    parsed = parse_tsbad_name(path.name)
    meta: dict = {"n_interpolated": n_non_finite} if n_non_finite else {}
    if columns.value != VALUE_COLUMN:
        meta["value_column"] = columns.value
    train_end = first_anomaly = None
    domain = "unknown"
    if parsed is not None:
        meta.update(index=parsed["index"], id=parsed["id"])
        domain = parsed["domain"]
        train_end, first_anomaly = parsed["train_end"], parsed["first_anomaly"]
        if train_end > values.size:
            warnings.warn(
                f"{path}: the name says the training prefix ends at {train_end} (tr_{train_end}) but the "
                f"series has only {values.size} points; training prefix clamped to {values.size}",
                stacklevel=3,
            )
            meta["train_end_in_name"] = train_end
            train_end = values.size
    return Series(
        values=values,
        labels=labels,
        name=path.stem,
        dataset=dataset or dataset_of(path),
        domain=domain,
        train_end=train_end,
        first_anomaly=first_anomaly,
        source=str(path),
        meta=meta,
        timestamps=timestamps,
    )


@dataclass
class _Columns:
    """Which column of a CSV holds the values, the labels and the times."""

    value: str
    label: str | None = None
    time: str | None = None


def _parse_csv(path: Path, raw: bytes) -> tuple[pd.DataFrame, int]:
    """The table and its number of header lines (0 or 1); headerless columns are named
    by position ("0", "1", ...)."""
    header = _has_header(raw)
    try:
        frame = pd.read_csv(io.BytesIO(raw), engine="c", skipinitialspace=True, header=0 if header else None)
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path}: empty file (no header)") from err
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: not a readable CSV file ({first_line})") from err
    frame.columns = [str(c).strip() for c in frame.columns] if header else [str(i) for i in range(frame.shape[1])]
    if len(frame) == 0:
        raise DataError(f"{path}: empty file (header only, no rows)")
    return frame, int(header)


def _has_header(raw: bytes) -> bool:
    """A first line with a field that is neither a number nor a date is a header."""
    for line in io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", errors="replace"):
        if line.strip():
            fields = next(csv.reader([line]))
            return not all(_looks_like_data(f.strip()) for f in fields)
    return False


def _looks_like_data(field: str) -> bool:
    if not field:
        return True
    try:
        float(field)
        return True
    except ValueError:
        pass
    if not any(ch.isdigit() for ch in field):  # 'now', 'Jan' parse as dates but are names
        return False
    try:
        return pd.Timestamp(field) is not pd.NaT
    except (ValueError, TypeError, OverflowError):
        return False


def _pick_columns(path: Path, frame: pd.DataFrame, column: str | int | None) -> _Columns:
    """Label column by name, time column by name or content, value column by ``column``,
    else ``Data``, else the one numeric column left; ambiguity is an error naming the columns."""
    names = list(frame.columns)
    lower = {c.lower(): c for c in names}
    label = next((lower[n] for n in LABEL_NAMES if n in lower), None)
    time = next((lower[n] for n in TIME_NAMES if n in lower), None)
    if time is None:
        time = next((c for c in names if c != label and _holds_dates(frame[c])), None)
    if column is not None:
        value = _resolve_column(path, names, column)
        if value == label:
            raise DataError(f"{path}: column {value!r} holds the labels, not the values")
        return _Columns(value, label, None if time == value else time)
    rest = [c for c in names if c not in (label, time)]
    if VALUE_COLUMN in names:
        extra = [c for c in rest if c != VALUE_COLUMN]
        if extra:
            raise DataError(
                f"{path}: unexpected extra column(s) {extra} next to '{VALUE_COLUMN}' (found {names}); "
                "choose the value column with --column"
            )
        return _Columns(VALUE_COLUMN, label, time)
    numeric = [c for c in rest if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool]
    candidates = numeric or rest
    if not candidates:
        raise DataError(f"{path}: no value column (found {names}; {label!r} holds labels, {time!r} times)")
    if len(candidates) > 1:
        raise DataError(
            f"{path}: several columns could hold the values {candidates}: choose one with --column "
            "(a name or a 0-based position)"
        )
    return _Columns(candidates[0], label, time)


def _resolve_column(path: Path, names: list[str], column: str | int) -> str:
    if str(column) in names:
        return str(column)
    if str(column).isdigit() and int(column) < len(names):
        return names[int(column)]
    raise DataError(f"{path}: no column {column!r}; columns: {names} (give a name or a 0-based position)")


def _holds_dates(series: pd.Series) -> bool:
    """True for a text column whose first values all parse as dates."""
    if pd.api.types.is_numeric_dtype(series.dtype) or series.dtype == bool:
        return False
    head = series.dropna().astype(str).head(5)
    return bool(len(head)) and all(_looks_like_data(v) and not _is_number(v) for v in head)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _time_column(path: Path, frame: pd.DataFrame, column: str, header_lines: int) -> np.ndarray:
    """Times as datetime64[ns] (UTC when the file gives offsets); numeric times as floats."""
    series = frame[column]
    if pd.api.types.is_numeric_dtype(series.dtype) and series.dtype != bool:
        return series.to_numpy(dtype=np.float64)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format": parsed element-wise
            parsed = pd.to_datetime(series, errors="coerce", utc=True)
    except (ValueError, TypeError, OverflowError) as err:
        raise DataError(f"{path}: cannot parse the times in column {column!r} ({err})") from err
    _refuse_unparsed(path, series, parsed, "unreadable time", repr(column), header_lines)
    return parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")


def _refuse_unparsed(path: Path, raw: pd.Series, parsed: pd.Series, what: str, column: str, header_lines: int) -> None:
    """One line naming the first value of ``raw`` that parsing turned into NaN, its line and
    how many such values there are."""
    bad = parsed.isna() & raw.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: {what} {raw.iloc[row]!r} in column {column} at line "
            f"{row + 1 + header_lines} ({int(bad.sum())} such value(s))"
        )


def _numeric_column(path: Path, frame: pd.DataFrame, column: str, header_lines: int = 1) -> np.ndarray:
    """The column as float64; text that is not a number is reported with its row."""
    series = frame[column]
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        coerced = pd.to_numeric(series, errors="coerce")
        _refuse_unparsed(path, series, coerced, "non-numeric value", f"'{column}'", header_lines)
        series = coerced
    if series.dtype == bool:
        raise DataError(f"{path}: column '{column}' holds true/false values, expected numbers")
    return series.to_numpy(dtype=np.float64)


def _easytsad_series(series_dir: Path, dataset: str, nan_policy: str, min_length: int) -> Series:
    parts = {}
    for part in ("train", "test", "train_label", "test_label"):
        file = series_dir / f"{part}.npy"
        if not file.exists():
            raise DataError(f"{series_dir}: missing {file.name} (EasyTSAD needs train/test .npy and their _label.npy)")
        try:
            with open_data_file(file) as handle:
                array = np.load(handle, allow_pickle=False)
        except DataError:
            raise
        except (OSError, ValueError, EOFError) as err:
            raise DataError(f"{file}: not a readable .npy array ({err})") from err
        array = np.squeeze(array)
        if array.ndim > 1:
            raise DataError(f"{file}: expected a univariate array, got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
            raise DataError(f"{file}: expected numbers, got dtype {array.dtype}")
        parts[part] = np.atleast_1d(array).astype(np.float64)
    for split in ("train", "test"):
        if parts[split].size != parts[f"{split}_label"].size:
            raise DataError(
                f"{series_dir}: {split}.npy has {parts[split].size} points but "
                f"{split}_label.npy has {parts[f'{split}_label'].size}"
            )
    values = clean_values(series_dir, np.concatenate([parts["train"], parts["test"]]), nan_policy)
    labels = check_labels(series_dir, np.concatenate([parts["train_label"], parts["test_label"]]))
    if values.size < min_length:
        raise DataError(f"{series_dir}: series has {values.size} points, shorter than the minimum of {min_length}")
    anomalous = np.flatnonzero(labels)
    return Series(
        values=values,
        labels=labels,
        name=f"{dataset}-{series_dir.name}",
        dataset=dataset,
        domain="unknown",
        train_end=int(parts["train"].size),
        first_anomaly=int(anomalous[0]) if anomalous.size else None,
        source=str(series_dir),
        meta={"layout": "easytsad"},
    )


def _is_file_list(path: Path, root: Path) -> bool:
    """TSB-AD ships its file lists (``File_List/*.csv``) next to the data; they are not series."""
    return "File_List" in path.relative_to(root).parts


def _apply_file_list(paths: list[Path], file_list: Path) -> tuple[list[Path], list[str]]:
    if not file_list.is_file():
        raise DataError(f"{file_list}: file list not found")
    try:
        listed = pd.read_csv(file_list)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{file_list}: not a readable CSV file list ({err})") from err
    if "file_name" not in listed.columns:
        raise DataError(f"{file_list}: file list needs a 'file_name' column (found {list(listed.columns)})")
    wanted = [Path(str(n).strip()).name for n in listed["file_name"].dropna()]
    wanted_set = set(wanted)
    kept = [p for p in paths if p.name in wanted_set]
    found = {p.name for p in kept}
    missing = sorted(n for n in wanted_set if n not in found)
    return kept, missing


def _filter_datasets(paths: list[Path], root: Path, datasets: Iterable[str]) -> list[Path]:
    wanted = {d.strip().lower() for d in datasets}
    names_of = {p: {dataset_of(p, root).lower(), p.parent.name.lower()} for p in paths}
    available = sorted({dataset_of(p, root) for p in paths})
    unknown = sorted(d for d in wanted if not any(d in names for names in names_of.values()))
    if unknown:
        raise DataError(f"{root}: no files for dataset(s) {unknown}; available: {available}")
    return [p for p in paths if names_of[p] & wanted]


def _maybe_progress(items: list, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file")
