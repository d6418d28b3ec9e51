"""Run rule code safely: the parent side of the sandbox.

A rule is untrusted code (an LLM may have written it). :func:`check_rule` (series rules)
and :func:`check_log_rule` (log rules) vet it statically (:mod:`anomamind.rules.policy`)
and then run it once in a FRESH sandbox process on sample windows; a rule that fails
either is rejected with the reason.
:class:`SandboxWorker` is a long-lived sandbox process for vetted rules, so inference over
a benchmark costs one process, not one per window. What the sandbox does and does not
guarantee is written down in docs/rules.md ("The sandbox").
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

from anomamind.rules.policy import static_problems

_HEADER = struct.Struct("<QQ")


class RuleRejected(Exception):
    """A rule failed a check. ``kind``: static, syntax, import, raised, shape, dtype,
    interface, timeout, memory, crashed or protocol."""

    def __init__(self, kind: str, reason: str):
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


@dataclass
class SandboxLimits:
    """Limits of one sandbox process.

    ``time_limit_s`` bounds one call on a small input; calls over many points get
    ``seconds_per_million_points`` more per million points, so a slow but finite rule
    on a big benchmark is not mistaken for a hang.
    """

    time_limit_s: float = 5.0
    memory_limit_mb: int = 512
    seconds_per_million_points: float = 20.0
    cpu_limit_s: int = 0  # RLIMIT_CPU of the whole process; 0 = none (long-lived workers)

    def timeout_for(self, n_points: int) -> float:
        return self.time_limit_s + self.seconds_per_million_points * n_points / 1e6


class SandboxWorker:
    """A sandbox process that runs rules over windows until closed.

    ``fresh_process_per_call=False`` (vetted rules) runs every call inside the worker;
    ``True`` (unvetted rules) makes the worker fork a fresh child for each call, so a
    rule under check cannot leave anything behind for the next one. Use as a context
    manager. After a timeout or a crash the worker is killed and a new one is started on
    the next call, so one bad rule does not poison the next.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        fresh_process_per_call: bool = False,
        startup_timeout_s: float = 60.0,
    ):
        self.limits = limits or SandboxLimits()
        self.mode = "fork" if fresh_process_per_call else "persistent"
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen | None = None

    # -- process management -------------------------------------------------------------
    def _start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "HF_TOKEN", "ANTHROPIC"))}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "anomamind.rules.sandbox_worker",
             str(self.limits.memory_limit_mb), str(self.limits.cpu_limit_s), self.mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, cwd="/", close_fds=True,
        )
        reply, _ = self._receive(self.startup_timeout_s, "starting the sandbox")
        if not reply.get("ready"):
            self.close()
            raise RuntimeError(f"rule sandbox did not start: {reply}")

    def close(self) -> None:
        """Stop the process (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def __enter__(self) -> "SandboxWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- messages -------------------------------------------------------------------------
    def _read_exact(self, n: int, deadline: float, doing: str) -> bytes:
        fd = self._proc.stdout.fileno()
        chunks = []
        while n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self._kill()
                raise RuleRejected("timeout", f"no answer within the time limit while {doing}")
            chunk = os.read(fd, min(n, 1 << 20))
            if not chunk:
                code = self._kill()
                raise RuleRejected("crashed", f"the sandbox process died while {doing} (exit code {code})")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _receive(self, timeout: float, doing: str) -> tuple[dict, bytes]:
        deadline = time.monotonic() + timeout
        head_len, payload_len = _HEADER.unpack(self._read_exact(_HEADER.size, deadline, doing))
        if head_len > 1 << 20:
            self._kill()
            raise RuleRejected("protocol", "the sandbox sent a malformed reply")
        try:
            header = json.loads(self._read_exact(head_len, deadline, doing))
        except ValueError as err:
            self._kill()
            raise RuleRejected("protocol", f"the sandbox sent a malformed reply: {err}") from err
        return header, self._read_exact(payload_len, deadline, doing)

    def _kill(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        proc.kill()
        code = proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        return code

    # -- running rules --------------------------------------------------------------------
    def run(self, source: str, values: np.ndarray, bounds: list[tuple[int, int]], name: str = "rule") -> np.ndarray:
        """0/1 flags (int8, one per point of ``values``) from running ``source`` on each
        window ``values[start:end]``; raises :class:`RuleRejected` with the reason."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        request = {"modality": "series", "bounds": [[int(s), int(e)] for s, e in bounds]}
        return self._call(source, name, request, values.tobytes(), values.size, values.size)

    def run_lines(self, source: str, windows: list[list[str]], name: str = "rule") -> np.ndarray:
        """0/1 flags (int8, one per window) from a log rule's ``detect(lines) -> bool`` on
        each window of log lines; raises :class:`RuleRejected` with the reason."""
        lines = [line for window in windows for line in window]
        for i, window in enumerate(windows):
            if any("\n" in line for line in window):
                raise ValueError(f"log window {i}: a line contains a newline (lines must be split first)")
        payload = "\n".join(lines).encode("utf-8", "surrogatepass")
        request = {"modality": "logs", "counts": [len(window) for window in windows]}
        return self._call(source, name, request, payload, len(lines), len(windows))

    def _call(self, source: str, name: str, request: dict, payload: bytes, work: int, n_flags: int) -> np.ndarray:
        """Send one request (``work``: points or lines, for the time limit); expect
        ``n_flags`` flags back."""
        if self._proc is None:
            self._start()
        timeout = self.limits.timeout_for(work)
        header = json.dumps({"source": source, "name": name, "timeout_s": timeout, **request}).encode()
        try:
            self._proc.stdin.write(_HEADER.pack(len(header), len(payload)))
            self._proc.stdin.write(header)
            self._proc.stdin.write(payload)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            code = self._kill()
            raise RuleRejected("crashed", f"the sandbox process died (exit code {code})") from err
        # in fork mode the worker enforces the limit itself; the parent waits a bit longer
        backstop = timeout + (5.0 if self.mode == "fork" else 0.0)
        reply, data = self._receive(backstop, f"running rule {name!r}")
        if not reply.get("ok"):
            raise RuleRejected(reply.get("kind", "raised"), reply.get("error", "unknown error"))
        flags = np.frombuffer(data, dtype=np.int8)
        if flags.size != n_flags:
            self._kill()
            raise RuleRejected("protocol", f"the sandbox returned {flags.size} flags, expected {n_flags}")
        return flags.copy()


def vet_source(source: str, modality: str = "series") -> None:
    """Raise :class:`RuleRejected` (kind ``static``) when the static check fails."""
    problems = static_problems(source, modality)
    if problems:
        kind = "syntax" if problems[0].startswith("syntax error") else "static"
        raise RuleRejected(kind, "; ".join(problems))


def _checked_run(limits: SandboxLimits | None, checker: SandboxWorker | None, call):
    """Run ``call(worker)`` in ``checker`` (a fork-mode worker) or in a fresh one."""
    if checker is not None:
        if checker.mode != "fork":
            raise ValueError("rule checks need a worker made with fresh_process_per_call=True")
        return call(checker)
    with SandboxWorker(limits, fresh_process_per_call=True) as worker:
        return call(worker)


def check_rule(
    source: str,
    sample_values: np.ndarray,
    bounds: list[tuple[int, int]],
    limits: SandboxLimits | None = None,
    name: str = "rule",
    checker: SandboxWorker | None = None,
) -> np.ndarray:
    """Vet ``source`` and run it once in a fresh sandbox process on sample windows.

    ``checker`` is a worker made with ``fresh_process_per_call=True`` to reuse across
    checks (one is started and stopped here otherwise). Returns the flags on the sample;
    raises :class:`RuleRejected` with the reason. Only rules that pass this may be run by
    a long-lived persistent :class:`SandboxWorker`.
    """
    vet_source(source)
    return _checked_run(limits, checker, lambda worker: worker.run(source, sample_values, bounds, name=name))


def check_log_rule(
    source: str,
    sample_windows: list[list[str]],
    limits: SandboxLimits | None = None,
    name: str = "rule",
    checker: SandboxWorker | None = None,
) -> np.ndarray:
    """:func:`check_rule` for a log rule: the static check with the log rules' import
    allow-list, then one run on ``sample_windows`` (lists of lines) in a fresh sandbox
    process. Returns one 0/1 flag per window."""
    vet_source(source, modality="logs")
    return _checked_run(limits, checker, lambda worker: worker.run_lines(source, sample_windows, name=name))
