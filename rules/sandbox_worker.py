"""The sandbox side of the rule sandbox: a zygote that forks one confined process per rule.

Started by :class:`anomamind.rules.sandbox.SandboxWorker` as
``python -m anomamind.rules.sandbox_worker CONTROL_FD MEMORY_MB CONFINE``, with an
environment built from an allow-list (no API keys). The *zygote*

1. imports everything a rule may use (numpy, scipy, the feature libraries, the log rules'
   modules), so no file has to be opened later;
2. caps its address space (RLIMIT_AS: what it maps now plus MEMORY_MB; no core dumps),
   closes every descriptor but the control socket and /dev/null, and loads its seccomp
   filter (:mod:`anomamind.rules.confinement`), then answers "ready";
3. on request from the parent, forks a *rule process* with two fresh pipes, hands the
   parent's ends of those pipes over the control socket (SCM_RIGHTS) and keeps none, and
   later kills and reaps it, reporting how it ended (e.g. SIGSYS: a forbidden system call).

A rule process keeps only its two pipes (as fd 0 and 1) and /dev/null, asks to die with
the zygote, caps its CPU time, loads the strict filter (no files, sockets, processes or
signals to others) and then serves run requests straight from the parent: one request
(fresh process per call, for unvetted rules) or all requests for one rule (a long-lived
process per rule, for inference). The zygote never runs rule code, and no rule process
sees another rule's process, so nothing one rule does is visible to the next.
CONFINE is ``require`` (a filter that cannot be loaded is an error), ``try`` (trusted
rules: confine if possible) or ``off``.

Protocols (framing: :mod:`anomamind.rules.sandbox_protocol`), no pickle anywhere. Control
socket: a 4-byte length and a JSON object each way
(``{"op": "spawn", "single": bool, "cpu_hard_s": n}`` -> ``{"pid": n}`` with the two
descriptors attached; ``{"op": "end", "pid": n}`` -> ``{"status": wait status}``). Rule
pipes: an 8-byte header length, an 8-byte payload length, a JSON header and raw bytes.
Requests carry the rule source, its modality, the time limit and either window bounds with
float64 values (series rules) or per-window line counts with the UTF-8 lines joined by
newlines (log rules); replies carry int8 flags (one per point, or one per window) or an
error whose text is bounded.
"""

from __future__ import annotations

import os
import sys

# Single-threaded numerics (the parent sets these too; a direct start gets them here).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
# pandas (imported by a feature tool) would load pyarrow, whose allocator starts a thread:
# the sandbox stays single-threaded, so pyarrow counts as not installed here.
sys.modules["pyarrow"] = None  # type: ignore[assignment]

import builtins  # noqa: E402
import collections  # noqa: E402,F401
import itertools  # noqa: E402,F401
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402,F401
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402,F401
import string  # noqa: E402,F401
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402,F401
import scipy.fft  # noqa: E402,F401
import scipy.ndimage  # noqa: E402,F401
import scipy.signal  # noqa: E402,F401
import scipy.stats  # noqa: E402,F401

from anomamind.rules import features  # noqa: E402,F401
from anomamind.rules.confinement import RuleProcessLockdown, limit_memory, zygote_filter  # noqa: E402
from anomamind.rules.policy import MODALITIES, SAFE_BUILTIN_NAMES, allowed_modules, module_allowed  # noqa: E402
from anomamind.rules.sandbox_protocol import CONTROL, HEADER, write_all  # noqa: E402

#: Longest error text a rule process sends (the parent bounds it again).
MAX_ERROR_CHARS = 4000


def _preload_tools() -> None:
    """Import the project's feature tools (anomamind.tools.features*) if they exist."""
    import importlib
    import pkgutil

    try:
        import anomamind.tools as tools
    except ImportError:
        return
    for info in pkgutil.iter_modules(tools.__path__):
        if info.name.startswith("features"):
            try:
                importlib.import_module(f"anomamind.tools.{info.name}")
            except Exception:  # a broken tool module must not take the sandbox down
                pass


# -- running one rule (inside a rule process) -------------------------------------------------
def _restricted_import(modality: str):
    """``__import__`` for rules of ``modality``: allow-listed modules that are already
    loaded, nothing else (a convenience with clear messages; the seccomp filter is what
    stops a rule that gets around it)."""

    def restricted_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level != 0:
            raise ImportError("relative imports are not allowed in rules")
        from_allowed = bool(fromlist) and all(module_allowed(f"{name}.{item}", modality) for item in fromlist)
        if not module_allowed(name, modality) and not from_allowed:
            raise ImportError(f"import of {name!r} is not allowed in rules "
                              f"(allowed: {', '.join(allowed_modules(modality))})")
        if name not in sys.modules:
            raise ImportError(f"module {name!r} is allowed but not preloaded by the sandbox")
        if from_allowed:
            return sys.modules[name]
        for item in fromlist or ():
            sub = f"{name}.{item}"
            if sub in sys.modules and not module_allowed(sub, modality):
                raise ImportError(f"import of {sub!r} is not allowed in rules")
        return sys.modules[name] if fromlist else sys.modules[name.split(".")[0]]

    return restricted_import


def _safe_builtins(modality: str) -> dict:
    table = {name: getattr(builtins, name) for name in SAFE_BUILTIN_NAMES if hasattr(builtins, name)}
    table["__import__"] = _restricted_import(modality)
    return table


class _RuleError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _load_rule(source: str, name: str, modality: str, cache: dict):
    """Compile and execute the rule module once per source; return its ``detect``."""
    key = (modality, source)
    if key in cache:
        return cache[key]
    code = compile(source, f"<rule {name}>", "exec")
    namespace = {"__builtins__": _safe_builtins(modality), "__name__": f"rule_{name}"}
    exec(code, namespace)  # noqa: S102 - the point of the sandbox
    detect = namespace.get("detect")
    if not callable(detect):
        raise _RuleError("interface", f"the rule defines no function detect({MODALITIES[modality][0]})")
    cache[key] = detect
    return detect


def _check_output(flags, length: int, start: int) -> np.ndarray:
    arr = np.asarray(flags)
    if arr.shape != (length,):
        raise _RuleError(
            "shape", f"window at {start}: detect returned shape {arr.shape}, expected ({length},)"
        )
    if arr.dtype.kind not in "biuf":
        raise _RuleError("dtype", f"window at {start}: detect returned dtype {arr.dtype}, expected 0/1 integers or booleans")
    if arr.dtype.kind == "f" and not np.all((arr == 0) | (arr == 1)):
        raise _RuleError("dtype", f"window at {start}: detect returned values other than 0 and 1")
    if arr.dtype.kind in "iu" and (arr.min(initial=0) < 0 or arr.max(initial=0) > 1):
        raise _RuleError("dtype", f"window at {start}: detect returned values other than 0 and 1")
    return arr


def _check_verdict(verdict, index: int) -> int:
    """A log rule's answer for one window: a bool or 0/1, nothing else."""
    if isinstance(verdict, (bool, np.bool_)):
        return int(verdict)
    if isinstance(verdict, (int, np.integer)) and verdict in (0, 1):
        return int(verdict)
    if isinstance(verdict, (int, np.integer, float, np.floating)):
        raise _RuleError("dtype", f"window {index}: detect returned {verdict!r}, expected a bool or 0/1")
    raise _RuleError("shape", f"window {index}: detect returned a {type(verdict).__name__}, expected a bool")


def _run(request: dict, payload: bytearray, cache: dict) -> np.ndarray:
    """The request's flags: one per point (series rules) or one per window (log rules)."""
    modality = request.get("modality", "series")
    detect = _load_rule(request["source"], request.get("name", "rule"), modality, cache)
    if modality == "logs":
        counts = request["counts"]
        lines = payload.decode("utf-8", "surrogatepass").split("\n") if sum(counts) else []
        out = np.zeros(len(counts), dtype=np.int8)
        start = 0
        for i, count in enumerate(counts):
            out[i] = _check_verdict(detect(lines[start:start + count]), i)
            start += count
        return out
    values = np.frombuffer(payload, dtype=np.float64)
    values.flags.writeable = False  # rules get read-only windows
    out = np.zeros(values.size, dtype=np.int8)
    for start, end in request["bounds"]:
        out[start:end] = _check_output(detect(values[start:end]), end - start, start)
    return out


def _bounded(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]} ... ({len(text)} characters, cut)"


def _describe(err: BaseException, source: str) -> tuple[str, str]:
    """(kind, message) of a rule's failure. Only the rule's own lines are quoted: looking up
    a library's source line would open a file, which the filter forbids."""
    if isinstance(err, _RuleError):
        return err.kind, str(err)
    if isinstance(err, MemoryError):
        return "memory", "the rule ran out of memory (sandbox memory limit)"
    lines = [lineno for frame, lineno in traceback.walk_tb(err.__traceback__)
             if frame.f_code.co_filename.startswith("<rule")]
    where = ""
    if lines:
        source_lines = source.splitlines()
        text = source_lines[lines[-1] - 1].strip() if 0 < lines[-1] <= len(source_lines) else ""
        where = f" (line {lines[-1]}: {text})"
    kind = "import" if isinstance(err, ImportError) else "raised"
    return kind, f"{type(err).__name__}: {err}{where}"


def _answer(request: dict, payload: bytearray, cache: dict) -> tuple[dict, bytes]:
    """Run one request; every failure of the rule becomes an error reply."""
    try:
        flags = _run(request, payload, cache)
    except BaseException as err:  # noqa: BLE001 - every failure of the rule is a verdict
        kind, message = _describe(err, request.get("source", ""))
        return {"ok": False, "kind": kind, "error": _bounded(message)}, b""
    return {"ok": True, "n": int(flags.size)}, flags.tobytes()


# -- pipes and the control socket -------------------------------------------------------------
def _read_into(fd: int, n: int) -> bytearray:
    buffer = bytearray(n)
    view, got = memoryview(buffer), 0
    while got < n:
        chunk = os.readv(fd, [view[got:]])
        if chunk == 0:
            raise EOFError
        got += chunk
    return buffer


def _read_message(fd: int) -> tuple[dict, bytearray]:
    head_len, payload_len = HEADER.unpack(_read_into(fd, HEADER.size))
    return json.loads(_read_into(fd, head_len)), _read_into(fd, payload_len)


def _write_message(fd: int, header: dict, payload: bytes = b"") -> None:
    raw = json.dumps(header).encode()
    write_all(fd, HEADER.pack(len(raw), len(payload)) + raw, payload)


def _serve_rule(single: bool, cpu_hard_s: int) -> None:
    """A rule process's loop: requests on fd 0, replies on fd 1, until EOF (or one request)."""
    cache: dict = {}
    while True:
        try:
            request, payload = _read_message(0)
        except EOFError:
            os._exit(0)
        # this call's CPU budget: what is used so far plus the call's time limit
        soft = math.ceil(time.process_time() + float(request.get("timeout_s", 5.0))) + 1
        if cpu_hard_s > 0:
            soft = min(soft, cpu_hard_s)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, cpu_hard_s if cpu_hard_s > 0 else resource.RLIM_INFINITY))
        _write_message(1, *_answer(request, payload, cache))
        if single:
            os._exit(0)


class Zygote:
    """Forks, hands over, kills and reaps rule processes on the parent's request."""

    def __init__(self, control: socket.socket, lockdown: RuleProcessLockdown):
        self.control = control
        self.lockdown = lockdown
        self.children: set[int] = set()
        self.finished: collections.OrderedDict[int, int] = collections.OrderedDict()  # pid -> wait status
        self.pid = os.getpid()

    def send(self, message: dict, fds: list[int] | None = None) -> None:
        raw = json.dumps(message).encode()
        if fds:
            socket.send_fds(self.control, [CONTROL.pack(len(raw)) + raw], fds)
        else:
            write_all(self.control.fileno(), CONTROL.pack(len(raw)) + raw)

    def receive(self) -> dict:
        (length,) = CONTROL.unpack(_read_into(self.control.fileno(), CONTROL.size))
        return json.loads(_read_into(self.control.fileno(), length))

    def spawn(self, single: bool, cpu_hard_s: int) -> None:
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as err:  # e.g. out of memory: the parent hears why, the zygote goes on
            for fd in (requests_r, requests_w, replies_r, replies_w):
                os.close(fd)
            self.send({"error": f"fork failed: {err}"})
            return
        if pid == 0:  # the rule process
            try:
                os.dup2(requests_r, 0)
                os.dup2(replies_w, 1)
                os.closerange(3, _max_fd())
                self.lockdown.apply(self.pid, cpu_hard_s)
                _serve_rule(single, cpu_hard_s)
            finally:
                os._exit(4)
        os.close(requests_r)
        os.close(replies_w)
        self.children.add(pid)
        self.send({"pid": pid}, [requests_w, replies_r])
        os.close(requests_w)
        os.close(replies_r)

    def end(self, pid: int) -> dict:
        """Kill rule process ``pid`` (if it still runs) and say how it ended."""
        if pid in self.finished:
            return {"status": self.finished.pop(pid)}
        if pid not in self.children:
            return {"error": f"process {pid} is not a rule process of this sandbox"}
        os.kill(pid, signal.SIGKILL)  # a zombie until reaped, so the pid cannot be reused
        _, status = os.waitpid(pid, 0)
        self.children.discard(pid)
        return {"status": status}

    def reap_finished(self) -> None:
        """Collect rule processes that ended on their own (one-call processes); keep how
        they ended for a later ``end``."""
        for pid in list(self.children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self.children.discard(pid)
                self.finished[pid] = status
        while len(self.finished) > 256:
            self.finished.popitem(last=False)

    def serve(self) -> int:
        while True:
            try:
                request = self.receive()
            except EOFError:
                break
            self.reap_finished()
            if request.get("op") == "spawn":
                self.spawn(bool(request.get("single")), int(request.get("cpu_hard_s", 0)))
            elif request.get("op") == "end":
                self.send(self.end(int(request["pid"])))
            else:
                self.send({"error": f"unknown operation {request.get('op')!r}"})
        for pid in list(self.children):
            self.end(pid)
        self.control.close()
        return 0


def _max_fd() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if 0 < soft <= 65536 else 65536


def _lock_down(zygote: Zygote, confine: str, memory_mb: int, control_fd: int) -> tuple[bool, str]:
    """Memory limits, descriptors, then the seccomp filters; (confined, why not)."""
    own_filter, problem = None, ""
    if confine != "off":
        try:
            own_filter = zygote_filter()
            zygote.lockdown = RuleProcessLockdown(confine=True)
        except Exception as err:  # noqa: BLE001 - any failure here means: cannot confine
            if confine == "require":
                raise
            problem = f"{type(err).__name__}: {err}"
    limit_memory(memory_mb)
    os.closerange(3, control_fd)
    os.closerange(control_fd + 1, _max_fd())
    if own_filter is not None:
        try:
            own_filter.load()
        except OSError as err:  # e.g. a kernel without seccomp filters
            if confine == "require":
                raise
            own_filter, problem = None, f"loading the seccomp filter failed: {err}"
            zygote.lockdown = RuleProcessLockdown(confine=False)
    return own_filter is not None, problem


def main(argv: list[str]) -> int:
    control_fd, memory_mb, confine = int(argv[0]), int(argv[1]), argv[2]
    zygote = Zygote(socket.socket(fileno=control_fd), RuleProcessLockdown(confine=False))
    stage = "starting"
    try:
        if confine not in ("require", "try", "off"):
            raise ValueError(f"unknown confinement {confine!r}")
        _preload_tools()
        warnings.simplefilter("ignore")  # showing a warning reads the source file: not allowed
        sys.stdout = sys.stderr  # stray prints go to /dev/null, never into a protocol
        stage = "confining"
        confined, problem = _lock_down(zygote, confine, memory_mb, control_fd)
    except Exception as err:  # noqa: BLE001 - report why the sandbox cannot start, then stop
        zygote.send({"ready": False, "stage": stage, "error": _bounded(f"{type(err).__name__}: {err}")})
        return 1
    zygote.send({"ready": True, "confined": confined, "problem": problem})
    return zygote.serve()


if __name__ == "__main__":
    sys.stderr.flush()
    os._exit(main(sys.argv[1:]))  # no interpreter teardown: it may make system calls the filter forbids
