"""Where a committed result came from: the commit, the exact command, the machine and its load.

Every table written for benchmarks/ starts with :func:`header_lines`, so a reader (and
``tests/test_benchmark_headers.py``) can tell which code and which command produced it,
and on what machine under what load: a result that names none of these cannot be
checked or refreshed.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from anomamind.paths import REPO_ROOT


#: What a result depends on (tests do not): uncommitted edits here mark the commit "+changes".
CODE_PATHSPECS = ("*.py", "*.sh", "*.toml", "configs", "agents/prompts", ":!tests")


def git_commit(root: Path = REPO_ROOT) -> str:
    """Short hash of the checkout's HEAD, with ``+changes`` when tracked code or configs
    differ from it (edits of docs, tests or results do not count); ``unknown`` outside a
    git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHSPECS],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+changes" if dirty else commit


def command_line(program: str | None = None, argv: list[str] | None = None) -> str:
    """The command as typed: ``program`` (default ``python SCRIPT``) and ``argv`` (default
    ``sys.argv[1:]``), shell-quoted so it can be pasted back."""
    args = sys.argv[1:] if argv is None else list(argv)
    if program is None:
        program = "python " + shlex.quote(os.path.relpath(sys.argv[0]) if os.path.isabs(sys.argv[0]) else sys.argv[0])
    return " ".join([program, *(shlex.quote(a) for a in args)])


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what platform reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary() -> str:
    """CPU, visible cores, Python and the load average now (results on a shared box move with it)."""
    try:
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return (f"{cpu_name()}, {os.cpu_count()} CPU cores visible, {platform.system()}, "
            f"Python {platform.python_version()}; load average {load} (1 / 5 / 15 min) when written")


def header_lines(command: str, split: str = "", machine: str | None = None) -> list[str]:
    """Markdown bullet lines naming the commit, the command, the machine (with load) and the
    data split; the form ``tests/test_benchmark_headers.py`` checks."""
    lines = [f"- Commit: `{git_commit()}`", f"- Command: `{command}`", f"- Machine: {machine or machine_summary()}"]
    if split:
        lines.append(f"- Split: {split}")
    return lines
