"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

A crash, a full disk or ``kill -9`` in the middle of a write leaves at most a stray
temporary file next to the target (removed when the write fails in-process); the target
is replaced by ``os.replace`` only after the data were flushed to disk.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``.

    ``mode`` is ``"wb"`` or ``"w"``. An exception inside the block removes the temporary
    file and leaves ``path`` as it was.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes only ('wb' or 'w'), not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: str | Path, write: Callable[[IO], object]) -> None:
    """Atomically write whatever ``write(handle)`` writes into a binary handle (e.g.
    ``lambda fh: np.savez_compressed(fh, ...)``)."""
    with atomic_open(path, "wb") as handle:
        write(handle)
