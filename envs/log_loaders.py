"""Load raw logs (Loghub BGL, Thunderbird, HDFS, Hadoop; our synthetic logs) into :class:`LogData`.

Labels come from where each data set keeps them: the first field of every line (BGL,
Thunderbird, synthetic: ``-`` = normal, anything else = an alert category), a per-session
CSV (HDFS: ``anomaly_label.csv``, block id -> Anomaly/Normal) or a per-application list
(Hadoop: ``abnormal_label.txt``). A line is anomalous when its session is. Problems a user
can have with a log (a binary file, an empty file, a line that does not fit the format, a
label file that does not fit) become a :class:`~anomamind.types.DataError` that names the
file (and line) and says what is wrong.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anomamind.envs.data_files import open_data_file
from anomamind.envs.log_formats import NORMAL_LABEL, ParsedLine, detect_format, get_format
from anomamind.types import DataError

BAD_LINE_POLICIES = ("error", "skip")
#: Label files the loader looks for next to a log (or in its ``preprocessed/`` folder).
SESSION_LABEL_FILES = ("anomaly_label.csv", "preprocessed/anomaly_label.csv")
APPLICATION_LABEL_FILE = "abnormal_label.txt"
_APPLICATION = re.compile(r"application_\d+_\d+")
_SNIFF_BYTES = 8192
_KEPT_PROBLEMS = 20


@dataclass
class LogData:
    """One log (or a folder of logs read as one), line by line.

    ``lines`` are the raw lines without the label field (what rules see), ``messages`` their
    free-text part (what the template parser sees). ``labels`` (0/1 per line, None when the log
    has no labels), ``categories`` (the label field or the session's category, ``-`` = normal),
    ``times`` (seconds, NaN when the format has none) and ``sessions`` (None per line without
    one) are aligned with ``lines``. ``skipped`` keeps the first problems of skipped lines.
    """

    lines: list[str]
    messages: list[str]
    labels: np.ndarray | None = None
    categories: list[str] | None = None
    times: np.ndarray | None = None
    sessions: list[str | None] | None = None
    name: str = "log"
    dataset: str = "LOG"
    format: str = ""
    source: str = ""
    n_skipped: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.lines)
        if len(self.messages) != n:
            raise DataError(f"{self.source or self.name}: {len(self.messages)} messages for {n} lines")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int8).reshape(-1)
            if self.labels.size != n:
                raise DataError(f"{self.source or self.name}: {self.labels.size} labels for {n} lines")
        if self.times is not None:
            self.times = np.asarray(self.times, dtype=np.float64).reshape(-1)

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    @property
    def has_sessions(self) -> bool:
        return self.sessions is not None and any(s is not None for s in self.sessions)


def load_log(
    path: str | Path,
    log_format: str = "auto",
    *,
    labels: str | Path | None = None,
    max_lines: int | None = None,
    bad_lines: str = "error",
    dataset: str | None = None,
) -> LogData:
    """Read a log file, or a folder of ``*.log`` files (Hadoop's layout), into :class:`LogData`.

    ``log_format`` is a name of :data:`~anomamind.envs.log_formats.FORMATS` or ``auto``
    (recognised from the first lines). ``labels`` is a session label file (HDFS CSV or Hadoop
    list); by default one is looked for next to the log. ``bad_lines="skip"`` skips lines that
    do not fit the format (they are counted and the first few kept in ``skipped``) instead
    of failing. ``max_lines`` reads only the first lines (for very large logs).
    """
    if bad_lines not in BAD_LINE_POLICIES:
        raise DataError(f"bad_lines must be one of {BAD_LINE_POLICIES}, got {bad_lines!r}")
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*.log"))  # special files too: refused by name when read
        if not files:
            raise DataError(f"{path}: the folder holds no *.log file")
    elif path.exists() or path.is_symlink():  # a special file or a broken link is refused by name when read
        files = [path]
    else:
        raise DataError(f"{path}: no such log file or folder")
    root = path if path.is_dir() else path.parent
    raw_files = [(f, read_lines(f, None if max_lines is None else max_lines)) for f in files]
    fmt = get_format(log_format) if log_format != "auto" else detect_format(raw_files[0][1][:20], str(files[0]))

    parsed: list[ParsedLine] = []
    sessions_from_path: list[str | None] = []
    n_skipped, problems = 0, []
    for file, raw in raw_files:
        found = _APPLICATION.search(str(file.relative_to(root))) if path.is_dir() else None
        application = found.group(0) if found else None
        first_of_file = len(parsed)
        for number, line in enumerate(raw, start=1):
            if max_lines is not None and len(parsed) >= max_lines:
                break
            if not line.strip():
                continue
            item = fmt.parse(line)
            if item is None and fmt.continuation and len(parsed) > first_of_file:
                previous = parsed[-1]
                item = ParsedLine(line, line.strip(), previous.category, previous.time, previous.session)
            if item is None:
                problem = (f"{file}:{number}: does not match the {fmt.name} log format "
                           f"(expected a line like {fmt.example!r}): {line[:160]!r}")
                if bad_lines == "error":
                    raise DataError(problem + " (use bad_lines=skip to skip such lines)")
                n_skipped += 1
                if len(problems) < _KEPT_PROBLEMS:
                    problems.append(problem)
                continue
            parsed.append(item)
            sessions_from_path.append(application)
    if not parsed:
        raise DataError(f"{path}: no log line could be read ({n_skipped} skipped as malformed)")

    sessions = [p.session if p.session is not None else s for p, s in zip(parsed, sessions_from_path)]
    has_sessions = any(s is not None for s in sessions)
    times = np.array([np.nan if p.time is None else p.time for p in parsed], dtype=np.float64)
    data = LogData(
        lines=[p.text for p in parsed],
        messages=[p.message for p in parsed],
        times=None if np.isnan(times).all() else times,
        sessions=sessions if has_sessions else None,
        name=path.stem if path.is_file() else path.name,
        dataset=dataset or fmt.name.upper(),
        format=fmt.name,
        source=str(path),
        n_skipped=n_skipped,
        skipped=problems,
    )
    if fmt.labelled:
        data.categories = [p.category or NORMAL_LABEL for p in parsed]
        data.labels = np.array([c != NORMAL_LABEL for c in data.categories], dtype=np.int8)
    label_file = Path(labels) if labels is not None else find_label_file(path)
    if label_file is not None:
        apply_session_labels(data, label_file)
    return data


def read_lines(path: Path, max_lines: int | None = None) -> list[str]:
    """The text lines of ``path`` (line ends stripped), refusing binary and empty files.

    The file must be a regular file within the data-file size limit
    (:func:`anomamind.envs.data_files.open_data_file`: ``ANOMAMIND_MAX_FILE_MB`` raises it).
    Bytes that are not UTF-8 are replaced (old syslog lines carry stray Latin-1); a NUL byte
    in the first 8 KiB marks a binary file.
    """
    try:
        with open_data_file(path) as handle:
            head = handle.read(_SNIFF_BYTES)
            if not head:
                raise DataError(f"{path}: the file is empty (no log lines)")
            if b"\x00" in head:
                offset = head.index(b"\x00")
                raise DataError(f"{path}: looks like a binary file (a NUL byte at offset {offset}), not a text log")
            handle.seek(0)
            lines = []
            for raw in handle:
                if b"\x00" in raw:
                    raise DataError(f"{path}:{len(lines) + 1}: contains a NUL byte; the file is not a text log")
                lines.append(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
                if max_lines is not None and len(lines) >= max_lines:
                    break
    except OSError as err:
        raise DataError(f"{path}: cannot be read: {err.strerror or err}") from err
    if not any(line.strip() for line in lines):
        raise DataError(f"{path}: the file holds only blank lines (no log lines)")
    return lines


def find_label_file(path: Path) -> Path | None:
    """A session label file next to the log (or in its folder), if there is one."""
    folder = path if path.is_dir() else path.parent
    for name in (*SESSION_LABEL_FILES, APPLICATION_LABEL_FILE):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def read_session_labels(path: str | Path) -> dict[str, str]:
    """Session -> category from an HDFS-style CSV (``BlockId,Label``; Anomaly/Normal or 1/0) or
    a Hadoop ``abnormal_label.txt`` (sections ``Normal:``, ``Machine down:`` ... with one
    ``+ application_...`` line per application). ``-`` is the normal category."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise DataError(f"{path}: cannot read the label file: {err.strerror or err}") from err
    if path.suffix.lower() == ".csv":
        return _csv_labels(path, text)
    return _application_labels(path, text)


def _csv_labels(path: Path, text: str) -> dict[str, str]:
    rows = list(csv.reader(text.splitlines()))
    if not rows or len(rows[0]) < 2:
        raise DataError(f"{path}: expected a CSV with a header 'BlockId,Label' (session id, label)")
    out = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 2:
            raise DataError(f"{path}:{number}: expected 'session,label', got {','.join(row)!r}")
        session, value = row[0].strip(), row[1].strip()
        if value.lower() in ("anomaly", "abnormal", "1"):
            out[session] = "Anomaly"
        elif value.lower() in ("normal", "0"):
            out[session] = NORMAL_LABEL
        else:
            raise DataError(f"{path}:{number}: label {value!r} is not Anomaly/Normal (or 1/0)")
    if not out:
        raise DataError(f"{path}: the label file lists no session")
    return out


def _application_labels(path: Path, text: str) -> dict[str, str]:
    out, section = {}, None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith(":"):
            section = line[:-1].strip()
            continue
        found = _APPLICATION.search(line)
        if found is None:
            raise DataError(f"{path}:{number}: expected a section header ('Normal:') or '+ application_ID', "
                            f"got {line[:80]!r}")
        if section is None:
            raise DataError(f"{path}:{number}: application listed before any section header ('Normal:' ...)")
        out[found.group(0)] = NORMAL_LABEL if section.lower() == "normal" else section
    if not out:
        raise DataError(f"{path}: the label file lists no application")
    return out


def apply_session_labels(data: LogData, label_file: Path) -> None:
    """Label every line by its session's label (a line is anomalous when its session is)."""
    by_session = read_session_labels(label_file)
    if data.sessions is None:
        raise DataError(f"{label_file}: session labels given, but the {data.format} lines of {data.source} "
                        "carry no session id")
    categories = [by_session.get(s, NORMAL_LABEL) if s is not None else NORMAL_LABEL for s in data.sessions]
    unknown = {s for s in data.sessions if s is not None and s not in by_session}
    if unknown:
        data.notes.append(f"{len(unknown)} session(s) are not in {label_file.name}; their lines count as normal")
    data.categories = categories
    data.labels = np.array([c != NORMAL_LABEL for c in categories], dtype=np.int8)
