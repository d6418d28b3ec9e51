"""Line formats of raw logs (Loghub's BGL, Thunderbird, HDFS, Hadoop, and our synthetic logs).

A format says how to split one raw line into its header fields and its message, where the
label is (BGL and Thunderbird: the first field, ``-`` = normal, anything else = an alert
category), how to read the time, and which pattern names the session a line belongs to
(HDFS block ids, request ids of the synthetic logs). Rules see the raw line without its
label field (:attr:`ParsedLine.text`); the template parser sees only the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from anomamind.types import DataError

NORMAL_LABEL = "-"


@dataclass(frozen=True)
class ParsedLine:
    """One log line split by its format: the text rules see, the message, label, time, session."""

    text: str  # the raw line without the label field
    message: str  # the free-text part (what the template parser reads)
    category: str | None  # the label field ("-" = normal), None when the format has none
    time: float | None  # seconds since the epoch (UTC)
    session: str | None


def _epoch(fields: dict[str, str]) -> float:
    return float(fields["epoch"])


def _strptime(pattern: str, *names: str) -> Callable[[dict[str, str]], float]:
    def parse(fields: dict[str, str]) -> float:
        stamp = datetime.strptime(" ".join(fields[n] for n in names), pattern)
        return stamp.replace(tzinfo=timezone.utc).timestamp()

    return parse


@dataclass(frozen=True)
class LogFormat:
    """How one kind of log line is laid out (see the module docstring).

    ``fields`` is the regex of the line after the label field, with named groups; ``content``
    is the message. Labelled formats put ``label`` (matched by ``label_pattern``) and one space
    before it.
    """

    name: str
    fields: str
    example: str  # a well-formed line, quoted in error messages
    labelled: bool = False
    label_pattern: str = r"\S+"
    time: Callable[[dict[str, str]], float] | None = None
    session: re.Pattern | None = None  # searched in the message; group 0 is the session id
    continuation: bool = False  # lines that do not match continue the previous event (stack traces)
    description: str = ""

    @property
    def header(self) -> re.Pattern:
        """The whole raw line (label field included)."""
        label = f"(?P<label>{self.label_pattern}) " if self.labelled else ""
        return _compiled("^" + label + self.fields)

    @property
    def text_pattern(self) -> str:
        """Regex source of the text rules see (the line without its label field)."""
        return "^" + self.fields

    def parse(self, line: str) -> ParsedLine | None:
        """The parsed line, or None when it does not match the format."""
        match = self.header.match(line)
        if match is None:
            return None
        fields = match.groupdict(default="")
        category = fields.get("label") if self.labelled else None
        text = line[match.end("label"):].lstrip(" ") if self.labelled else line
        try:
            time = self.time(fields) if self.time else None
        except ValueError:
            return None
        message = fields["content"]
        session = None
        if self.session is not None:
            found = self.session.search(message)
            session = found.group(0) if found else None
        return ParsedLine(text=text, message=message, category=category, time=time, session=session)


_PATTERNS: dict[str, re.Pattern] = {}


def _compiled(source: str) -> re.Pattern:
    if source not in _PATTERNS:
        _PATTERNS[source] = re.compile(source)
    return _PATTERNS[source]


FORMATS: dict[str, LogFormat] = {
    "bgl": LogFormat(
        name="bgl",
        fields=(r"(?P<epoch>\d+) (?P<date>\d{4}\.\d{2}\.\d{2}) (?P<node>\S+) "
                r"(?P<time>\d{4}-\d{2}-\d{2}-\d{2}\.\d{2}\.\d{2}\.\d+) (?P<node_repeat>\S+) "
                r"(?P<type>\S+) (?P<component>\S+) (?P<level>\S+) ?(?P<content>.*)$"),
        labelled=True,
        example="- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 "
                "RAS KERNEL INFO instruction cache parity error corrected",
        time=_epoch,
        description="Blue Gene/L (Loghub BGL): label, epoch, date, node, time, node, type, component, level, message",
    ),
    "thunderbird": LogFormat(
        name="thunderbird",
        fields=(r"(?P<epoch>\d+) (?P<date>\d{4}\.\d{2}\.\d{2}) (?P<user>\S+) (?P<month>[A-Z][a-z]{2}) +(?P<day>\d+) "
                r"(?P<time>\S+) (?P<location>\S+) ?(?P<content>.*)$"),
        labelled=True,
        example="- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: "
                "session closed for user root",
        time=_epoch,
        description="Thunderbird (Loghub): label, epoch, date, user, month, day, time, location, message",
    ),
    "hdfs": LogFormat(
        name="hdfs",
        fields=r"(?P<date>\d{6}) (?P<time>\d{6}) (?P<pid>\d+) (?P<level>\w+) (?P<component>[^:\s]+): ?(?P<content>.*)$",
        example="081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block "
                "blk_38865049064139660 terminating",
        time=_strptime("%y%m%d %H%M%S", "date", "time"),
        session=re.compile(r"blk_-?\d+"),
        description="HDFS (Loghub HDFS_v1): date, time, pid, level, component, message; sessions are block ids",
    ),
    "hadoop": LogFormat(
        name="hadoop",
        fields=(r"(?P<date>\d{4}-\d{2}-\d{2}) (?P<time>\d{2}:\d{2}:\d{2}),(?P<millis>\d{3}) (?P<level>\w+) "
                r"\[(?P<process>[^\]]*)\] (?P<component>[^:\s]+): ?(?P<content>.*)$"),
        example="2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: "
                "Created MRAppMaster for application appattempt_1445144423722_0020_000001",
        time=_strptime("%Y-%m-%d %H:%M:%S", "date", "time"),
        continuation=True,
        description="Hadoop MapReduce (Loghub): date, time, level, [process], component, message; "
                    "stack-trace lines continue the event above them; sessions are applications",
    ),
    "synthetic": LogFormat(
        name="synthetic",
        fields=r"(?P<epoch>\d{9,}(?:\.\d+)?) (?P<node>\S+) (?P<level>[A-Z]+) (?P<component>[^:\s]+): ?(?P<content>.*)$",
        labelled=True,
        label_pattern=r"-|[A-Z][A-Z_]*",
        example="- 1700000000.250 node-03 INFO auth: session req_000017 opened for user u42",
        time=_epoch,
        session=re.compile(r"req_\d+"),
        description="anomamind's synthetic logs: label, epoch, node, level, component, message; "
                    "sessions are request ids (req_N)",
    ),
}


def get_format(name: str) -> LogFormat:
    """The format called ``name``; a clear error listing the known ones otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise DataError(f"unknown log format {name!r}; known: {', '.join(FORMATS)} (or 'auto')") from None


def detect_format(sample: list[str], source: str = "log") -> LogFormat:
    """The format whose header matches every non-empty line of ``sample`` (the file's first lines;
    for formats with continuation lines: the first line and most of the others).

    Should several formats match, the most specific (the most header fields) wins.
    """
    lines = [line for line in sample if line.strip()]
    if not lines:
        raise DataError(f"{source}: no non-empty line to recognise the log format from")

    def fits(fmt: LogFormat) -> bool:
        hits = [fmt.header.match(line) is not None for line in lines]
        return all(hits) or (fmt.continuation and hits[0] and sum(hits) >= len(hits) / 2)

    matching = [f for f in FORMATS.values() if fits(f)]
    if not matching:
        raise DataError(
            f"{source}: the first lines match none of the known log formats ({', '.join(FORMATS)}); "
            f"first line: {lines[0][:120]!r}. Pass the format explicitly (--format NAME)"
        )
    return max(matching, key=lambda f: len(f.header.groupindex))
