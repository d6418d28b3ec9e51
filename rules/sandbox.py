"""Run rule code safely: the parent side of the sandbox.

A rule is untrusted code (an LLM may have written it, users share rule folders).
:func:`check_rule` (series rules) and :func:`check_log_rule` (log rules) vet it
statically (:mod:`anomamind.rules.policy`: a fast first filter with clear messages) and
then run it once in a FRESH confined process on sample windows; a rule that fails either
is rejected with the reason. :class:`SandboxWorker` runs rules in confined processes
forked by one sandbox process (:mod:`anomamind.rules.sandbox_worker`): one process per
call for unvetted rules, one long-lived process per rule for inference. The guarantee is
the OS layer (seccomp, :mod:`anomamind.rules.confinement`); where it is unavailable,
rules run only when the user says they are trusted (``trusted_rules``). What the sandbox
does and does not guarantee is written down in docs/rules.md ("The sandbox").
"""

from __future__ import annotations

import collections
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

from anomamind.rules.confinement import UNCONFINED_EXIT, confinement_problem, sandbox_environment
from anomamind.rules.policy import static_problems
from anomamind.rules.sandbox_protocol import CONTROL, HEADER, byte_view, write_all

log = logging.getLogger(__name__)

#: Longest error text a rejection keeps (a rule controls its error text: it is bounded
#: before it is stored in a manifest, a benchmark table or a log).
MAX_REASON_CHARS = 2000


def bounded_text(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    return text if len(text) <= limit else f"{text[:limit]} ... ({len(text)} characters, cut)"


class RuleRejected(Exception):
    """A rule failed a check. ``kind``: static, syntax, import, raised, shape, dtype,
    interface, timeout, memory, forbidden (a system call the sandbox forbids), crashed or
    protocol. The reason is bounded (:data:`MAX_REASON_CHARS`)."""

    def __init__(self, kind: str, reason: str):
        reason = bounded_text(str(reason))
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


class SandboxUnavailable(RuntimeError):
    """Rules cannot be confined on this machine and were not declared trusted."""


@dataclass
class SandboxLimits:
    """Limits of the sandbox's processes, and whether rules are trusted.

    ``time_limit_s`` bounds one call on a small input; calls over many points get
    ``seconds_per_million_points`` more per million points, so a slow but finite rule
    on a big benchmark is not mistaken for a hang. Each call is also the CPU-time limit
    (RLIMIT_CPU) of the rule's process; ``cpu_limit_s`` > 0 caps a long-lived rule
    process's CPU time in total. ``memory_limit_mb`` is each process's address-space
    allowance on top of the preloaded libraries; at most ``max_rule_processes`` long-lived
    rule processes are kept (least recently used go first), so the sandbox's memory is
    bounded by (1 + max_rule_processes) x that. ``trusted_rules``: where the OS confinement
    is unavailable, run the rules anyway (only for rules you trust).
    """

    time_limit_s: float = 5.0
    memory_limit_mb: int = 512
    seconds_per_million_points: float = 20.0
    cpu_limit_s: int = 0
    max_rule_processes: int = 4
    trusted_rules: bool = False

    def timeout_for(self, n_points: int) -> float:
        return self.time_limit_s + self.seconds_per_million_points * n_points / 1e6


@dataclass
class _RuleProcess:
    """The parent's view of one rule process: its pid and its two pipes."""

    pid: int
    requests: int  # write end
    replies: int  # read end

    def close(self) -> None:
        for fd in (self.requests, self.replies):
            try:
                os.close(fd)
            except OSError:
                pass


class _ProcessEnded(Exception):
    """The rule process stopped answering (``timed_out``) or died (EOF, broken pipe)."""

    def __init__(self, timed_out: bool):
        self.timed_out = timed_out


#: How a rule process that died is reported: signal -> (kind, reason).
_DEATHS = {
    signal.SIGSYS: ("forbidden", "the rule made a system call that the sandbox forbids (opening files, sockets, "
                                 "starting processes or threads, signalling other processes, ...); "
                                 "the kernel killed its process"),
    signal.SIGXCPU: ("timeout", "the rule used more CPU time than its limit"),
}


class SandboxWorker:
    """Runs rules in confined processes until closed (use as a context manager).

    ``fresh_process_per_call=True`` (unvetted rules, checks) runs every call in a new
    process; ``False`` (vetted rules) keeps one process per rule for all its calls, or one
    per rule set where the caller says so (``shared_process``: a rule set is one detector,
    and its rules sharing a process keeps inference as fast as one process). A process
    that times out, crashes or breaks the rules of the sandbox is killed; the next call
    starts a new one.
    Raises :class:`SandboxUnavailable` where rules cannot be confined, unless
    ``limits.trusted_rules``.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        fresh_process_per_call: bool = False,
        startup_timeout_s: float = 60.0,
    ):
        self.limits = limits or SandboxLimits()
        require_sandbox(self.limits.trusted_rules)
        self.mode = "fork" if fresh_process_per_call else "persistent"
        self.startup_timeout_s = startup_timeout_s
        self.confined: bool | None = None  # known once the sandbox process has started
        self._zygote: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._processes: collections.OrderedDict[tuple[str, str], _RuleProcess] = collections.OrderedDict()

    # -- the sandbox process ------------------------------------------------------------------
    def _start(self) -> None:
        problem = confinement_problem()  # set only for trusted rules (the constructor refused otherwise)
        confine = "try" if self.limits.trusted_rules else "require"
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._zygote = subprocess.Popen(
                [sys.executable, "-m", "anomamind.rules.sandbox_worker",
                 str(theirs.fileno()), str(self.limits.memory_limit_mb), "off" if problem else confine],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=sandbox_environment(), cwd="/", pass_fds=(theirs.fileno(),), start_new_session=True,
            )
        finally:
            theirs.close()
        self._control = ours
        try:
            reply, _ = self._control_receive(self.startup_timeout_s, "starting the sandbox")
        except RuntimeError:
            self.close()
            raise
        if not reply.get("ready"):
            self.close()
            error = reply.get("error", "no reason given")
            if confine == "require" and reply.get("stage") == "confining":
                raise SandboxUnavailable(_refusal(f"the sandbox process could not confine itself ({error})"))
            raise RuntimeError(f"rule sandbox did not start: {error}")
        self.confined = bool(reply.get("confined"))
        if not self.confined:
            log.warning("running trusted rules WITHOUT OS confinement: %s", problem or reply.get("problem"))

    def close(self) -> None:
        """Stop every process of the sandbox (idempotent)."""
        for process in self._processes.values():
            process.close()
        self._processes.clear()
        control, self._control = self._control, None
        zygote, self._zygote = self._zygote, None
        if control is not None:
            control.close()  # the sandbox process kills its rule processes and exits
        if zygote is not None:
            try:
                zygote.wait(timeout=2)
            except subprocess.TimeoutExpired:
                _kill_group(zygote)

    def __enter__(self) -> "SandboxWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the control channel ------------------------------------------------------------------
    def _control_call(self, message: dict, doing: str) -> tuple[dict, list[int]]:
        if self._control is None:
            self._start()
        raw = json.dumps(message).encode()
        try:
            self._control.sendall(CONTROL.pack(len(raw)) + raw)
        except OSError as err:
            self.close()
            raise RuntimeError(f"the rule sandbox stopped while {doing}: {err}") from err
        return self._control_receive(self.startup_timeout_s, doing)

    def _control_receive(self, timeout: float, doing: str) -> tuple[dict, list[int]]:
        """One reply from the sandbox process (a JSON object and any descriptors)."""
        control = self._control
        control.settimeout(timeout)
        try:
            data, fds, _, _ = socket.recv_fds(control, CONTROL.size, 2)
            while len(data) < CONTROL.size:
                more = control.recv(CONTROL.size - len(data))
                if not more:
                    break
                data += more
            if len(data) < CONTROL.size:
                raise EOFError
            (length,) = CONTROL.unpack(data)
            body = b""
            while len(body) < length:
                more = control.recv(length - len(body))
                if not more:
                    raise EOFError
                body += more
            return json.loads(body), fds
        except (OSError, EOFError, ValueError) as err:
            code = self._zygote.poll() if self._zygote is not None else None
            self.close()
            raise RuntimeError(f"the rule sandbox stopped while {doing} (exit code {code}): "
                               f"{type(err).__name__}") from err

    def _spawn(self) -> _RuleProcess:
        single = self.mode == "fork"
        reply, fds = self._control_call({"op": "spawn", "single": single,
                                         "cpu_hard_s": 0 if single else int(self.limits.cpu_limit_s)},
                                        "starting a rule process")
        if len(fds) != 2 or "pid" not in reply:
            for fd in fds:
                os.close(fd)
            raise RuntimeError(f"the rule sandbox could not start a rule process: {reply.get('error', reply)}")
        return _RuleProcess(int(reply["pid"]), fds[0], fds[1])

    def _end(self, process: _RuleProcess) -> int | None:
        """Kill and reap ``process``; its wait status (None if the sandbox is gone)."""
        process.close()
        if self._control is None:
            return None
        reply, _ = self._control_call({"op": "end", "pid": process.pid}, "stopping a rule process")
        return reply.get("status")

    def _process_for(self, key: tuple[str, str]) -> _RuleProcess:
        if self.mode == "fork":
            return self._spawn()
        if key in self._processes:
            self._processes.move_to_end(key)
            return self._processes[key]
        while len(self._processes) >= max(1, self.limits.max_rule_processes):
            _, oldest = self._processes.popitem(last=False)
            self._end(oldest)
        process = self._processes[key] = self._spawn()
        return process

    # -- running rules ------------------------------------------------------------------------
    def run(self, source: str, values: np.ndarray, bounds: list[tuple[int, int]], name: str = "rule",
            shared_process: str | None = None) -> np.ndarray:
        """0/1 flags (int8, one per point of ``values``) from running ``source`` on each
        window ``values[start:end]``; raises :class:`RuleRejected` with the reason.
        Rules given the same ``shared_process`` name share one long-lived process (the
        rules of one rule set); otherwise each rule has its own."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        request = {"modality": "series", "bounds": [[int(s), int(e)] for s, e in bounds]}
        return self._call(source, name, request, values, values.size, values.size, shared_process)

    def run_lines(self, source: str, windows: list[list[str]], name: str = "rule",
                  shared_process: str | None = None) -> np.ndarray:
        """0/1 flags (int8, one per window) from a log rule's ``detect(lines) -> bool`` on
        each window of log lines; raises :class:`RuleRejected` with the reason.
        ``shared_process``: as in :meth:`run`."""
        lines = [line for window in windows for line in window]
        for i, window in enumerate(windows):
            if any("\n" in line for line in window):
                raise ValueError(f"log window {i}: a line contains a newline (lines must be split first)")
        payload = "\n".join(lines).encode("utf-8", "surrogatepass")
        request = {"modality": "logs", "counts": [len(window) for window in windows]}
        return self._call(source, name, request, payload, len(lines), len(windows), shared_process)

    def _call(self, source: str, name: str, request: dict, payload, work: int, n_flags: int,
              shared_process: str | None) -> np.ndarray:
        """Send one request (``work``: points or lines, for the time limit) to the rule's
        process; expect ``n_flags`` flags back."""
        key = ("shared", shared_process) if shared_process is not None else (request["modality"], source)
        process = self._process_for(key)
        timeout = self.limits.timeout_for(work)
        header = json.dumps({"source": source, "name": name, "timeout_s": timeout, **request}).encode()
        try:
            reply, data = self._exchange(process, header, payload, timeout, n_flags)
        except _ProcessEnded as ended:
            self._processes.pop(key, None)
            raise self._verdict(process, ended, timeout) from None
        except RuleRejected:  # a malformed reply: this process is not to be trusted further
            self._processes.pop(key, None)
            self._end(process)
            raise
        if self.mode == "fork":
            process.close()  # it exits by itself after one request
        if not reply.get("ok"):
            raise RuleRejected(reply.get("kind", "raised"), reply.get("error", "unknown error"))
        return np.frombuffer(data, dtype=np.int8).copy()

    def _exchange(self, process: _RuleProcess, header: bytes, payload, timeout: float,
                  n_flags: int) -> tuple[dict, bytes]:
        """Write one request, read one reply (which must carry ``n_flags`` flags or an error)."""
        deadline = time.monotonic() + timeout
        try:
            write_all(process.requests, HEADER.pack(len(header), len(byte_view(payload))) + header, payload)
        except OSError:  # BrokenPipeError: the process is gone
            raise _ProcessEnded(timed_out=False) from None
        head_len, payload_len = HEADER.unpack(_read_exact(process.replies, HEADER.size, deadline))
        if head_len > 1 << 20 or payload_len not in (0, n_flags):
            raise RuleRejected("protocol", f"the rule's process sent a malformed reply "
                                           f"({head_len} header bytes, {payload_len} flags for {n_flags})")
        try:
            reply = json.loads(_read_exact(process.replies, head_len, deadline))
        except ValueError as err:
            raise RuleRejected("protocol", f"the rule's process sent a malformed reply: {err}") from err
        if not isinstance(reply, dict) or payload_len != (n_flags if reply.get("ok") else 0):
            raise RuleRejected("protocol", "the rule's process sent flags that do not match its answer")
        return reply, _read_exact(process.replies, payload_len, deadline)

    def _verdict(self, process: _RuleProcess, ended: _ProcessEnded, timeout: float) -> RuleRejected:
        """Why ``process`` stopped, as a rejection (after killing and reaping it)."""
        status = self._end(process)
        if ended.timed_out:
            return RuleRejected("timeout", f"no answer within the time limit ({timeout:g} s)")
        if status is not None and os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig in _DEATHS:
                return RuleRejected(*_DEATHS[sig])
            return RuleRejected("crashed", f"the rule's process was killed by {signal.Signals(sig).name}")
        code = os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None
        if code == UNCONFINED_EXIT:
            return RuleRejected("crashed", "the rule's process could not confine itself; the rule did not run")
        return RuleRejected("crashed", f"the rule's process exited with code {code}")


def _read_exact(fd: int, n: int, deadline: float) -> bytes:
    chunks = []
    while n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise _ProcessEnded(timed_out=True)
        chunk = os.read(fd, min(n, 1 << 22))
        if not chunk:
            raise _ProcessEnded(timed_out=False)
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the sandbox process and every rule process (its process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def require_sandbox(trusted_rules: bool = False) -> None:
    """Raise :class:`SandboxUnavailable` (one line: why, and the flag) where rules cannot
    be confined and ``trusted_rules`` is not set; commands call it before any work."""
    problem = confinement_problem()
    if problem and not trusted_rules:
        raise SandboxUnavailable(_refusal(problem))


def _refusal(problem: str) -> str:
    return (f"rules are untrusted code and this machine cannot confine them: {problem}; "
            "pass --trusted-rules (config: sandbox.trusted_rules=true) to run rules you trust without confinement")


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
