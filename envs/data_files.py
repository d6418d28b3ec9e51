"""Opening a data file safely: a regular file of bounded size, or a clear ``DataError``.

A folder of data may hold anything: a FIFO (reading it blocks forever), a symlink to a
device (``/dev/zero`` never ends), a broken link, or a huge or sparse file (a 2 GB file of
zero bytes made pandas allocate over 10 GB). Each is refused by its kind and size, read
from ``stat`` before a single byte is read, with a message naming the file. The size limit
is :data:`DEFAULT_MAX_FILE_MB` MiB, or the environment variable ``ANOMAMIND_MAX_FILE_MB``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from anomamind.types import DataError

#: Largest data file read, in MiB (a 10M-point TSB-AD CSV is about 200 MiB).
DEFAULT_MAX_FILE_MB = 512
#: Environment variable overriding :data:`DEFAULT_MAX_FILE_MB` (a positive number).
MAX_FILE_ENV = "ANOMAMIND_MAX_FILE_MB"

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def max_file_bytes() -> int:
    """The size limit for one data file, in bytes."""
    raw = os.environ.get(MAX_FILE_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_FILE_MB << 20
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = -1.0
    if not megabytes > 0:
        raise DataError(f"{MAX_FILE_ENV}={raw!r}: expected a positive number of MiB")
    return int(megabytes * (1 << 20))


def _check(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        via = " (through a symbolic link)" if path.is_symlink() else ""
        raise DataError(f"{path}: {kind}{via}, not a regular file")
    limit = max_file_bytes()
    if info.st_size > limit:
        raise DataError(
            f"{path}: {_size(info.st_size)} is over the {_size(limit)} limit for one data file; "
            f"set {MAX_FILE_ENV} (MiB) to raise it"
        )


def _size(n_bytes: int) -> str:
    return f"{n_bytes / (1 << 20):,.1f} MiB" if n_bytes >= 1 << 20 else f"{n_bytes:,} bytes"


def open_data_file(path: str | Path) -> BinaryIO:
    """Open ``path`` for binary reading once it is known to be a regular file within the
    size limit (checked before opening, and again on the opened file)."""
    path = Path(path)
    try:
        _check(path, path.stat())
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        what = "broken symbolic link" if path.is_symlink() else "file not found"
        raise DataError(f"{path}: {what}") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read file ({err.strerror or err})") from err
    try:
        _check(path, os.fstat(fd))  # the file may have been swapped since the first check
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_data_file(path: str | Path) -> bytes:
    """The bytes of a data file (see :func:`open_data_file`)."""
    with open_data_file(path) as handle:
        try:
            return handle.read()
        except OSError as err:
            raise DataError(f"{path}: cannot read file ({err.strerror or err})") from err
