"""Worker processes that die with the process that started them.

A pool worker re-parented to init after its owner was killed (``kill -9``, the OOM killer)
would run on, holding memory and CPU for results nobody collects. When the owner is the
worker's parent (the ``fork`` and ``spawn`` start methods) on Linux, the kernel kills the
worker (``prctl(PR_SET_PDEATHSIG, SIGKILL)``); otherwise (a fork server in between, other
systems) a daemon thread polls the owner. Call :func:`die_with_owner` first thing in a pool
initializer, with the owner's pid taken before the pool was made.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_owner(owner_pid: int, poll_s: float = 1.0) -> None:
    """Arrange for this process to exit when the process ``owner_pid`` exits."""
    if os.getppid() == owner_pid and sys.platform.startswith("linux") and _set_pdeathsig():
        if os.getppid() != owner_pid:  # the owner died before prctl took effect
            os._exit(1)
        return
    threading.Thread(target=_watch, args=(owner_pid, poll_s), daemon=True, name="owner-watch").start()


def _set_pdeathsig() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (not Linux): the signal test is all we have
        return True


def _watch(owner_pid: int, poll_s: float) -> None:
    while _alive(owner_pid):
        time.sleep(poll_s)
    os._exit(1)
