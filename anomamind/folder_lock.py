"""An exclusive lock on an output folder, so two runs never write one folder at once.

``fcntl.flock`` on ``<folder>/.lock``: the kernel drops the lock when the holder exits,
however it exits (``kill -9`` included), so a stale lock file never blocks a later run.
The holder's pid and command are written into the file for the message a second run gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"


class FolderLocked(RuntimeError):
    """Another process holds the lock of the folder; the message says which."""


@contextlib.contextmanager
def folder_lock(folder: str | Path, command: str) -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if missing) for the block; raise
    :class:`FolderLocked` at once, without waiting, when another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise FolderLocked(
                f"{folder} is in use by {holder}; wait for it to finish or choose another output folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({command})\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
