"""The child side of the rule sandbox: a process that runs rule code over windows.

Started by :class:`anomamind.rules.sandbox.SandboxWorker` as
``python -m anomamind.rules.sandbox_worker MEMORY_MB CPU_SECONDS MODE``. Before it reads any
rule it (1) imports everything a rule may use, (2) closes every file descriptor but its
stdin/stdout/stderr pipes and lowers RLIMIT_NOFILE to 3, so no file or socket can be
opened any more, (3) caps its address space (RLIMIT_AS) at what it uses now plus
MEMORY_MB and, if CPU_SECONDS > 0, its CPU time. Rules then run with a vetted set of
builtins and an ``__import__`` that only hands out already-imported allow-listed modules.

MODE ``persistent`` runs every request in this process (for vetted rules: fast, one
process for a whole benchmark); MODE ``fork`` forks a fresh child per request (for
unvetted rules: nothing a rule does survives its check), which costs milliseconds
instead of the seconds a new interpreter needs to import numpy and scipy.

Protocol (stdin -> stdout), no pickle in either direction: each message is an 8-byte
header length, an 8-byte payload length, a JSON header and raw bytes. Requests carry the
rule source, its modality and either window bounds with float64 values (series rules) or
per-window line counts with the UTF-8 lines joined by newlines (log rules); replies carry
int8 flags (one per point, or one per window) or an error.
"""

from __future__ import annotations

import os
import sys

# Single-threaded numerics: predictable memory under RLIMIT_AS and no oversubscription.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import builtins  # noqa: E402
import collections  # noqa: E402,F401
import itertools  # noqa: E402,F401
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402,F401
import resource  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402,F401
import string  # noqa: E402,F401
import struct  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402,F401
import scipy.fft  # noqa: E402,F401
import scipy.ndimage  # noqa: E402,F401
import scipy.signal  # noqa: E402,F401
import scipy.stats  # noqa: E402,F401

from anomamind.rules import features  # noqa: E402,F401
from anomamind.rules.policy import MODALITIES, SAFE_BUILTIN_NAMES, allowed_modules, module_allowed  # noqa: E402

_HEADER = struct.Struct("<QQ")


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


def _restricted_import(modality: str):
    """``__import__`` for rules of ``modality``: allow-listed modules that are already
    loaded, nothing else."""

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


def _lock_down(memory_mb: int, cpu_seconds: int, base_vm_bytes: int) -> None:
    """Close extra descriptors, then apply the resource limits (irreversible)."""
    os.closerange(3, 65536)
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))
    if memory_mb > 0:
        limit = base_vm_bytes + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if cpu_seconds > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def _vm_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _read_exact(stream, n: int) -> bytes:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _reply(out, header: dict, payload: bytes = b"") -> None:
    raw = json.dumps(header).encode()
    out.write(_HEADER.pack(len(raw), len(payload)))
    out.write(raw)
    out.write(payload)
    out.flush()


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


class _RuleError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


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


def _run(request: dict, payload: bytes, cache: dict) -> np.ndarray:
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
    values = np.frombuffer(payload, dtype=np.float64).copy()
    values.flags.writeable = False  # rules get read-only windows
    out = np.zeros(values.size, dtype=np.int8)
    for start, end in request["bounds"]:
        out[start:end] = _check_output(detect(values[start:end]), end - start, start)
    return out


def _describe(err: BaseException, source: str) -> tuple[str, str]:
    if isinstance(err, _RuleError):
        return err.kind, str(err)
    if isinstance(err, MemoryError):
        return "memory", "the rule ran out of memory (sandbox memory limit)"
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith("<rule")]
    where = ""
    if frames:
        lines = source.splitlines()
        lineno = frames[-1].lineno or 0
        text = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
        where = f" (line {lineno}: {text})"
    kind = "import" if isinstance(err, ImportError) else "raised"
    return kind, f"{type(err).__name__}: {err}{where}"


def _answer(request: dict, payload: bytes, cache: dict) -> tuple[dict, bytes]:
    """Run one request; every failure of the rule becomes an error reply."""
    try:
        flags = _run(request, payload, cache)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # noqa: BLE001 - every failure of the rule is a verdict
        kind, message = _describe(err, request.get("source", ""))
        return {"ok": False, "kind": kind, "error": message}, b""
    return {"ok": True, "n": int(flags.size)}, flags.tobytes()


def _answer_in_child(stdout, request: dict, payload: bytes) -> None:
    """Fork mode: run the request in a fresh child process; report how the child ended.

    The child gets a wall-clock alarm and a CPU limit of ``timeout_s``; it writes its own
    reply (after cancelling the alarm) and exits 0. Any other ending (killed by the alarm,
    the CPU limit or the kernel) is reported here, by the parent.
    """
    timeout = float(request.get("timeout_s", 5.0))
    pid = os.fork()
    if pid == 0:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        cpu = max(1, math.ceil(timeout))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        header, flags = _answer(request, payload, {})
        signal.setitimer(signal.ITIMER_REAL, 0)
        _reply(stdout, header, flags)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGALRM, signal.SIGXCPU):
        _reply(stdout, {"ok": False, "kind": "timeout", "error": f"the rule ran longer than {timeout:g} s"})
    elif os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        _reply(stdout, {"ok": False, "kind": "crashed", "error": f"the rule's process was killed by {name}"})
    else:
        _reply(stdout, {"ok": False, "kind": "crashed", "error": f"the rule's process exited with {os.WEXITSTATUS(status)}"})


def main(argv: list[str]) -> int:
    memory_mb, cpu_seconds, mode = int(argv[0]), int(argv[1]), argv[2]
    if mode not in ("persistent", "fork"):
        raise SystemExit(f"unknown sandbox mode {mode!r}")
    _preload_tools()
    base_vm_bytes = _vm_bytes()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    _lock_down(memory_mb, cpu_seconds, base_vm_bytes)
    _reply(stdout, {"ok": True, "ready": True})
    cache: dict = {}
    while True:
        try:
            head_len, payload_len = _HEADER.unpack(_read_exact(stdin, _HEADER.size))
            request = json.loads(_read_exact(stdin, head_len))
            payload = _read_exact(stdin, payload_len)
        except EOFError:
            return 0
        if mode == "fork":
            _answer_in_child(stdout, request, payload)
        else:
            _reply(stdout, *_answer(request, payload, cache))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
