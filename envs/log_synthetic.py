"""Synthetic logs with known anomalies: the log modality's tests and its second benchmark.

A small service writes interleaved request sessions (``req_N``: a read workflow and a
rarer write workflow, each a fixed sequence of templates with variable fields: users drawn
from a skewed popularity, paths, IPs, latencies; now and then a token refresh) plus
background lines without a session (disk heartbeats, scheduler jobs, and a harmless kernel
message that contains the word "error", as BGL's "instruction cache parity error corrected"
does). Injected anomalies, one kind per anomalous session, labelled with the kind as the
category of every line of the session:

- ``ERROR``: the session hits an error template ("connection refused", HTTP 500);
- ``UNSEEN``: the session logs a template that occurs nowhere else (a segfault line);
- ``BURST``: the session repeats a normal template (the token refresh) dozens of times
  within a second;
- ``MISSING``: the session lacks one of its steps (the write is never committed);
- ``ORDER``: the session's steps come out of order (the response before the query).

The same seed gives the same log, line for line. :func:`write_log` writes the ``synthetic`` line format that
:func:`anomamind.envs.log_loaders.load_log` reads back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anomamind.envs.log_formats import NORMAL_LABEL
from anomamind.envs.log_loaders import LogData

ANOMALY_KINDS: tuple[str, ...] = ("ERROR", "UNSEEN", "BURST", "MISSING", "ORDER")
DATASET = "SYNTHETIC"  # the name load_log gives a log in the synthetic format too
_START = 1_700_000_000.0
_NODES = ("node-01", "node-02", "node-03")
_PATHS = ("/api/items", "/api/items/{id}", "/api/users/{id}", "/api/search", "/health")
_TABLES = ("items", "users", "orders")


@dataclass
class _Event:
    time: float
    node: str
    level: str
    component: str
    message: str
    category: str = NORMAL_LABEL
    session: str | None = None


class _Service:
    """Draws the variable fields of the templates from one seeded generator."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        popularity = 1.0 / np.arange(1, 201) ** 1.1
        self.user_p = popularity / popularity.sum()

    def user(self) -> str:
        return f"u{int(self.rng.choice(200, p=self.user_p)) + 1}"

    def ip(self) -> str:
        return f"10.0.{int(self.rng.integers(0, 8))}.{int(self.rng.integers(2, 250))}"

    def path(self) -> str:
        template = _PATHS[int(self.rng.choice(len(_PATHS), p=[0.35, 0.3, 0.15, 0.15, 0.05]))]
        return template.replace("{id}", str(int(self.rng.integers(1, 10_000))))

    def millis(self, scale: float = 12.0) -> int:
        return max(1, int(self.rng.lognormal(np.log(scale), 0.5)))

    def key(self) -> str:
        return f"{int(self.rng.integers(0, 1 << 32)):08x}"

    def node(self) -> str:
        return _NODES[int(self.rng.integers(len(_NODES)))]


def _session(service: _Service, number: int, start: float, kind: str | None) -> list[_Event]:
    """The lines of one request session (``kind`` injects a session anomaly, None = normal)."""
    rng = service.rng
    req, node, user = f"req_{number:06d}", service.node(), service.user()
    write = rng.random() < 0.2
    table = _TABLES[int(rng.integers(len(_TABLES)))]
    steps: list[tuple[str, str, str]] = [("INFO", "auth", f"session {req} opened for user {user}")]
    if write:
        steps += [
            ("INFO", "api", f"{req} POST {service.path()} from {service.ip()}"),
            ("INFO", "db", f"{req} insert into {table} took {service.millis(20)} ms"),
            ("INFO", "db", f"{req} commit of {int(rng.integers(1, 40))} rows done"),
            ("INFO", "cache", f"{req} invalidated key {service.key()}"),
        ]
    else:
        steps.append(("INFO", "api", f"{req} GET {service.path()} from {service.ip()}"))
        for _ in range(int(rng.integers(1, 4))):
            steps.append(("INFO", "db", f"{req} query on {table} took {service.millis()} ms"))
        steps.append(("INFO", "cache", f"{req} cache {'hit' if rng.random() < 0.7 else 'miss'} for key {service.key()}"))
    status = 200 if write or rng.random() < 0.9 else 304
    steps.append(("INFO", "api", f"{req} responded {status} in {service.millis(30)} ms"))
    refresh = ("INFO", "auth", f"{req} token refresh for user {user} from {service.ip()}")
    if kind == "BURST":
        steps[1:1] = [refresh] * int(rng.integers(25, 60))
    elif rng.random() < 0.1:
        steps.insert(1, refresh)
    if kind == "UNSEEN":
        steps.insert(int(rng.integers(1, len(steps))), ("WARN", "kernel",
                     f"worker[{int(rng.integers(100, 9999))}] segfault at {int(rng.integers(1 << 28, 1 << 32)):x} "
                     f"in libsvc.so ({req})"))
    if kind == "ERROR":
        at = int(rng.integers(2, len(steps) - 1))
        steps[at] = ("ERROR", "db", f"{req} connection refused by {service.ip()}:5432")
        steps[-1] = ("ERROR", "api", f"{req} responded 500 in {service.millis(30)} ms")
    elif kind == "MISSING":
        candidates = [i for i, s in enumerate(steps) if "commit" in s[2] or "cache" in s[1]]
        del steps[candidates[0] if candidates else len(steps) - 1]
    steps.append(("INFO", "auth", f"session {req} closed after {int(rng.integers(1, 30))} s"))
    if kind == "ORDER":  # the response is written before the api/db work
        response = next(i for i, s in enumerate(steps) if "responded" in s[2])
        steps.insert(1, steps.pop(response))
    gaps = np.array([0.01 if "token refresh" in s[2] else 0.15 for s in steps])
    times = start + np.cumsum(rng.exponential(gaps))
    category = kind or NORMAL_LABEL
    return [_Event(t, node, level, component, message, category, req)
            for t, (level, component, message) in zip(times, steps)]


def _background(service: _Service, start: float, end: float) -> list[_Event]:
    rng = service.rng
    events = []
    for node in _NODES:  # disk heartbeats every ~10 s per node
        t = start + rng.uniform(0, 10)
        while t < end:
            events.append(_Event(t, node, "INFO", "disk", f"usage {int(rng.integers(20, 80))}% on /dev/sda1"))
            t += rng.normal(10, 0.5)
    t, job = start + rng.uniform(0, 30), 0
    while t < end:  # scheduler jobs every ~30 s
        job += 1
        node = service.node()
        events.append(_Event(t, node, "INFO", "scheduler", f"job {job} started on {node}"))
        events.append(_Event(t + rng.uniform(1, 5), node, "INFO", "scheduler",
                             f"job {job} finished with status 0 in {int(rng.integers(1, 5))} s"))
        t += rng.exponential(30)
    t = start + rng.exponential(40)
    while t < end:  # harmless: corrected hardware errors are normal here, as on BGL
        events.append(_Event(t, service.node(), "INFO", "kernel", "instruction cache parity error corrected"))
        t += rng.exponential(40)
    return events


def generate_log(n_lines: int = 5000, seed: int = 0, anomaly_rate: float = 0.03,
                 kinds: tuple[str, ...] = ANOMALY_KINDS, name: str | None = None) -> LogData:
    """About ``n_lines`` lines (whole sessions only) with anomalies of ``kinds`` injected.

    ``anomaly_rate`` is the share of sessions that carry an anomaly. The kinds take turns,
    so every kind occurs once there are as many anomalous sessions as kinds.
    """
    unknown = sorted(set(kinds) - set(ANOMALY_KINDS))
    if unknown:
        raise ValueError(f"unknown anomaly kind(s) {unknown}; known: {ANOMALY_KINDS}")
    rng = np.random.default_rng(seed)
    service = _Service(rng)
    events: list[_Event] = []
    t, number, n_session_lines, n_anomalies = _START, 0, 0, 0
    target = int(n_lines * 0.88)  # the rest comes from background lines
    while n_session_lines < target:
        number += 1
        t += rng.exponential(2.0)
        kind = None
        if kinds and rng.random() < anomaly_rate:
            kind = kinds[n_anomalies % len(kinds)]
            n_anomalies += 1
        lines = _session(service, number, t, kind)
        events += lines
        n_session_lines += len(lines)
    events += _background(service, _START, t)
    events.sort(key=lambda e: e.time)
    times = np.round(np.array([e.time for e in events]), 3)
    lines = [f"{ts:.3f} {e.node} {e.level} {e.component}: {e.message}" for ts, e in zip(times, events)]
    categories = [e.category for e in events]
    return LogData(
        lines=lines,
        messages=[e.message for e in events],
        labels=np.array([c != NORMAL_LABEL for c in categories], dtype=np.int8),
        categories=categories,
        times=times,
        sessions=[e.session for e in events],
        name=name or f"synthetic-{seed}",
        dataset=DATASET,
        format="synthetic",
        source=f"generate_log(n_lines={n_lines}, seed={seed}, anomaly_rate={anomaly_rate})",
    )


def write_log(data: LogData, path: str | Path) -> Path:
    """Write ``data`` in the ``synthetic`` line format (label field first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    categories = data.categories or [NORMAL_LABEL] * len(data)
    with open(path, "w", encoding="utf-8") as out:
        for category, line in zip(categories, data.lines):
            out.write(f"{category} {line}\n")
    return path
