"""The benchmark's result cache: keys that change with everything a result depends on, and
entries that are written atomically and checked when read.

An entry is ``<stem>.npz`` (the decision and scores) plus ``<stem>.json`` (the metrics row);
the row is written last, so its presence marks a finished pair. Only successful pairs are
stored (eval/bench.py decides). The key hashes the series (values, labels, ``train_end``),
the detector name and options, :data:`METRICS_VERSION`, the project's code and detector
configs (:func:`code_fingerprint`) and the content of every file the detector reads from
outside the package (:func:`inputs_digest`: a ``rules:PATH`` folder, an agent YAML given
as an option and the prompt or knowledge files it names). Edit any of them and the pair is
computed again. An entry that cannot be read (a truncated file, a full disk during an old
run) is reported, removed and computed again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from anomamind.atomic import atomic_write_text, atomic_write_with
from anomamind.eval.registry import OUTPUT_OPTIONS, SeriesPrediction
from anomamind.types import Series, _json_default

log = logging.getLogger(__name__)

#: Bump when the per-series metrics change, so cached results are recomputed.
METRICS_VERSION = 1

#: Folders whose code a detector's result may depend on, and the configuration and prompt
#: folders the detectors read (every file in them, whatever its suffix).
_CODE_DIRS = ("anomamind", "agents", "tools", "envs", "rl", "eval", "rules")
_CONFIG_DIRS = ("configs/agents", "configs/knowledge", "configs/rules", "agents/prompts")
#: Config files whose string values may name further input files (an agent YAML naming
#: its prompts); those are followed, one file at a time, never whole folders.
_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
_CHUNK = 1 << 20


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the project's source, detector configs and prompts, so a changed detector is
    rerun: resuming is for interrupted runs of the same code."""
    from anomamind.paths import REPO_ROOT

    files = [p for d in _CODE_DIRS for p in (REPO_ROOT / d).rglob("*.py")]
    files += [p for d in _CONFIG_DIRS for p in (REPO_ROOT / d).rglob("*") if p.is_file()]
    digest = hashlib.sha256()
    for path in sorted(set(files)):
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# --- the files a detector reads --------------------------------------------------------


def _strings(value: Any) -> Iterable[str]:
    """Every string inside nested dicts and lists (keys excluded)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _existing(text: str, bases: Iterable[Path]) -> Path | None:
    """The file or folder ``text`` names (absolute, or relative to one of ``bases``)."""
    text = text.strip()
    if not text or "\n" in text or len(text) > 4096:
        return None
    try:
        candidate = Path(text).expanduser()
    except RuntimeError:  # "~name" of no user (e.g. a token of a tokenizer.json): not a path
        return None
    for path in [candidate] if candidate.is_absolute() else [base / candidate for base in bases]:
        try:
            if path.exists():
                return path.resolve()
        except OSError:  # a name too long for the file system, a permission problem
            continue
    return None


def detector_inputs(detector: str, options: dict[str, Any]) -> list[Path]:
    """The files a detector reads from outside the package, found without knowing it.

    Roots are the argument of ``name:PATH`` and every option value naming a file or folder
    (relative to the working directory), except options the detector writes to
    (:data:`~anomamind.eval.registry.OUTPUT_OPTIONS`). A folder contributes all files below it; a YAML or
    JSON file is read and each of its string values naming a file (relative to that file's
    folder or the working directory) is followed in turn.
    """
    cwd = Path.cwd()
    roots = [detector.split(":", 1)[1]] if ":" in detector else []
    roots += [text for key, value in options.items() if key not in OUTPUT_OPTIONS for text in _strings(value)]
    pending = [p for p in (_existing(r, [cwd]) for r in roots) if p is not None]
    found: set[Path] = set()
    while pending:
        path = pending.pop()
        if path in found:
            continue
        if path.is_dir():
            pending += [p.resolve() for p in path.rglob("*") if p.is_file()]
            continue
        found.add(path)
        if path.suffix.lower() in _CONFIG_SUFFIXES:
            pending += [p for p in (_existing(s, [path.parent, cwd]) for s in _config_strings(path)) if p and p.is_file()]
    return sorted(found)


def _config_strings(path: Path) -> list[str]:
    import yaml

    try:
        return list(_strings(yaml.safe_load(path.read_text(errors="replace"))))
    except (OSError, yaml.YAMLError):
        return []  # its bytes are still hashed; the detector reports what is wrong with it


@functools.lru_cache(maxsize=4096)
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a file's content (memoised per size and modification time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def inputs_digest(detector: str, options: dict[str, Any]) -> str:
    """Hash of the names and contents of :func:`detector_inputs` ('' when there are none)."""
    paths = detector_inputs(detector, options)
    if not paths:
        return ""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(str(path).encode())
        digest.update(_file_digest(path, stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


# --- keys ------------------------------------------------------------------------------


def pair_key(series: Series, detector: str, options: dict[str, Any], inputs: str = "") -> str:
    """Hash of everything a cached result depends on (values, labels, detector, options,
    the files it reads (``inputs``: :func:`inputs_digest`), code)."""
    digest = hashlib.sha256()
    digest.update(code_fingerprint().encode())
    digest.update(np.ascontiguousarray(series.values, dtype=np.float64).tobytes())
    if series.labels is not None:
        digest.update(np.ascontiguousarray(series.labels, dtype=np.int8).tobytes())
    payload = [detector, options, series.train_end, METRICS_VERSION, inputs]
    digest.update(json.dumps(payload, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def cache_stem(out_dir: Path, series: Series, detector: str, options: dict[str, Any], inputs: str = "") -> Path:
    """``out_dir/cache/<detector>/<dataset>__<series>__<key>`` (no suffix)."""
    name = f"{_safe(series.dataset)}__{_safe(series.name)}__{pair_key(series, detector, options, inputs)}"
    return out_dir / "cache" / _safe(detector) / name


# --- entries ---------------------------------------------------------------------------


def write_entry(stem: Path, row: dict[str, Any], prediction: SeriesPrediction) -> None:
    """Write the arrays, then the row, each atomically; the row's presence marks the pair done."""
    pred = np.asarray(prediction.pred, dtype=np.int8)
    scores = np.asarray(prediction.scores, dtype=np.float32)
    atomic_write_with(stem.with_suffix(".npz"), lambda fh: np.savez_compressed(fh, pred=pred, scores=scores))
    atomic_write_text(stem.with_suffix(".json"), json.dumps(row, default=_json_default, indent=1))


def _read_arrays(npz_path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    with open(npz_path, "rb") as handle, np.load(handle) as data:  # closed even when unreadable
        pred, scores = data["pred"], data["scores"].astype(np.float64)
    if pred.shape != (n,) or scores.shape != (n,):
        raise ValueError(f"arrays of shape {pred.shape} and {scores.shape}, expected ({n},)")
    return pred, scores


def load_entry(stem: Path, n: int) -> dict[str, Any] | None:
    """The cached row of a finished pair of a series of ``n`` points, or None: missing, or
    unreadable (then a warning names the file, the entry is removed, and the caller
    computes the pair again)."""
    json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
    if not json_path.exists():
        return None
    try:
        row = json.loads(json_path.read_text())
        if not isinstance(row, dict) or row.get("status") != "ok":
            raise ValueError("not a finished result row")
        _read_arrays(npz_path, n)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("cache entry %s is unreadable (%s: %s); computing it again", stem, type(err).__name__, err)
        for path in (json_path, npz_path):
            path.unlink(missing_ok=True)
        return None
    return row


def load_arrays(stem: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached (pred, scores) of a pair; zeros for a failed pair (it predicted nothing)."""
    npz_path = stem.with_suffix(".npz")
    if not npz_path.exists():
        return np.zeros(n, dtype=np.int8), np.zeros(n)
    return _read_arrays(npz_path, n)
