"""Full logs to a file under the run folder; the terminal keeps progress bars, warnings and
one-line summaries.

:func:`log_to_file` sends, for the duration of a run, every record of the project's loggers
(INFO and up), the warnings of transformers and datasets (their loggers do not propagate)
and Python warnings (deprecations and the like, which would otherwise print a source line
each) to one file. The terminal shows WARNING and up of the project's loggers, as before.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

#: Libraries whose loggers keep their own terminal handler and do not propagate to root.
_LIBRARY_LOGGERS = ("transformers", "datasets", "trl")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _CountingFileHandler(logging.FileHandler):
    """A file handler that counts the warnings it wrote (for the run's summary line)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self.warnings = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.warnings += 1
        super().emit(record)


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """``warnings.showwarning`` replacement: one record on the ``py.warnings`` logger."""
    logging.getLogger("py.warnings").warning("%s:%s: %s: %s", filename, lineno, category.__name__, message)


@contextlib.contextmanager
def log_to_file(path: str | Path) -> Iterator[_CountingFileHandler]:
    """Log the block's records to ``path`` (created, appended to); yields the handler, whose
    ``warnings`` counts the warnings it received."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _CountingFileHandler(path)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger()
    terminal = None
    if not root.handlers:  # keep warnings on the terminal (Python's last-resort handler stops
        terminal = logging.StreamHandler(sys.stderr)  # once root has any handler)
        terminal.setLevel(logging.WARNING)
        root.addHandler(terminal)
    project = logging.getLogger("anomamind")
    saved_level = project.level
    project.setLevel(logging.INFO)
    py_warnings = logging.getLogger("py.warnings")
    saved_propagate = py_warnings.propagate
    py_warnings.propagate = False  # Python warnings to the file only
    targets = [root, py_warnings, *(logging.getLogger(name) for name in _LIBRARY_LOGGERS)]
    for logger in targets:
        logger.addHandler(handler)
    with warnings.catch_warnings():  # restores the previous warnings.showwarning (nesting works)
        warnings.showwarning = _log_warning
        try:
            yield handler
        finally:
            for logger in targets:
                logger.removeHandler(handler)
            if terminal is not None:
                root.removeHandler(terminal)
            project.setLevel(saved_level)
            py_warnings.propagate = saved_propagate
            handler.close()
