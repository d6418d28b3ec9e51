"""The OS layer of the rule sandbox: seccomp-bpf system-call allow-lists, resource limits
and the sandbox's environment.

Rules are untrusted code, and a Python-level blacklist cannot be made complete (numpy and
scipy reach os, importlib and the real builtins in many ways). What holds is what the
kernel enforces: a rule runs in a process whose seccomp filter allows only the system
calls of pure computation (read and write on the pipes it already has, memory management,
clocks, signals to itself, exit). Every other system call (open, stat, socket, connect,
clone, fork, execve, kill, ptrace, ...) KILLS the process, so a rule cannot catch the
refusal and carry on. Filters cannot be removed and are inherited, so nothing a rule does
afterwards (ctypes, native code) gets around them.

Two filters, stacked: the *zygote* (the sandbox process that imported numpy and scipy
and forks one process per rule) may also fork, create pipes and hand them over, kill and
reap its children; a *rule process* adds the strict filter on top right after the fork.
The zygote never runs rule code.

libseccomp (a system library on practically every Linux) is driven through ``pyseccomp``
(pure-Python ctypes bindings), imported lazily so the rest of the project imports without
it. :func:`confinement_problem` says why confinement is impossible on this machine.
"""

from __future__ import annotations

import errno
import functools
import os
import resource
import sys

#: What a rule process may do: pure computation on the pipes it was given.
RULE_SYSCALLS: tuple[str, ...] = (
    "read", "write", "readv", "writev",
    "mmap", "munmap", "mremap", "brk", "madvise", "mprotect",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
    "futex", "sched_yield", "getrandom", "getpid", "gettid", "getrusage",
    "clock_gettime", "clock_getres", "gettimeofday", "time", "clock_nanosleep", "nanosleep",
    "exit", "exit_group",
)

#: What the zygote may do on top: fork rule processes (no threads), give them pipes, set
#: their limits and filter, hand the pipes to the parent, kill and reap them.
ZYGOTE_SYSCALLS: tuple[str, ...] = (
    "close", "close_range", "dup2", "dup3", "pipe2", "fcntl", "wait4", "kill", "getppid",
    "sendmsg", "recvfrom", "sendto", "prctl", "seccomp", "prlimit64", "set_robust_list", "rseq",
)

#: Variables the sandbox inherits from the parent's environment (everything else, API keys
#: included, is left behind). PYTHONPATH: where the parent found this package.
INHERITED_VARIABLES: tuple[str, ...] = ("PYTHONPATH",)
#: ... and the numeric libraries' own settings (e.g. OPENBLAS_CORETYPE, which some virtual
#: machines need because OpenBLAS cannot detect their CPU).
INHERITED_PREFIXES: tuple[str, ...] = ("OPENBLAS_", "GOTOBLAS_", "MKL_", "NPY_")

#: Variables the sandbox always gets: single-threaded numerics (no thread pools to create,
#: predictable memory under RLIMIT_AS), UTF-8 text, no user site-packages.
SANDBOX_VARIABLES: dict[str, str] = {
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1", "PYTHONUTF8": "1", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
}

_CLONE_VM = 0x00000100
_CLONE_THREAD = 0x00010000
#: Exit code of a rule process that could not confine itself (it never runs the rule).
UNCONFINED_EXIT = 97
_PR_SET_PDEATHSIG = 1
_SECCOMP_SET_MODE_FILTER = 1


def sandbox_environment(parent: dict[str, str] | None = None) -> dict[str, str]:
    """The sandbox process's environment: :data:`SANDBOX_VARIABLES` plus the variables of
    ``parent`` (default: ``os.environ``) named in :data:`INHERITED_VARIABLES` or starting
    with one of :data:`INHERITED_PREFIXES`."""
    parent = os.environ if parent is None else parent
    inherited = {k: v for k, v in parent.items() if k in INHERITED_VARIABLES or k.startswith(INHERITED_PREFIXES)}
    return {**inherited, **SANDBOX_VARIABLES}


@functools.lru_cache(maxsize=1)
def confinement_problem() -> str | None:
    """Why rules cannot be confined here (None: they can). Checked in the parent; the
    sandbox process re-checks by loading its filter."""
    if not sys.platform.startswith("linux"):
        return f"the rule sandbox needs Linux seccomp, and this is {sys.platform}"
    try:
        import pyseccomp  # noqa: F401
    except (ImportError, RuntimeError, OSError) as err:
        return f"libseccomp or pyseccomp is missing ({err})"
    return None


def _allow_all(syscall_filter, names: tuple[str, ...], action: int) -> None:
    """Allow ``names``; a name this architecture lacks (e.g. ``time`` on arm64) is skipped."""
    for name in names:
        try:
            syscall_filter.add_rule(action, name)
        except (OSError, ValueError, RuntimeError):
            continue


def rule_filter():
    """The strict filter of a rule process (compiled once in the zygote, installed after
    each fork by :class:`RuleProcessLockdown`)."""
    import pyseccomp as sc

    strict = sc.SyscallFilter(sc.KILL_PROCESS)
    _allow_all(strict, RULE_SYSCALLS, sc.ALLOW)
    strict.add_rule(sc.ALLOW, "prlimit64", sc.Arg(0, sc.EQ, 0))  # its own limits only (per-call CPU)
    return strict


def zygote_filter():
    """The zygote's filter: the rule processes' system calls, plus forking without threads
    and handing pipes over. Everything else (open, socket, connect, execve, ...) kills."""
    import pyseccomp as sc

    zygote = sc.SyscallFilter(sc.KILL_PROCESS)
    zygote.set_attr(sc.Attr.CTL_TSYNC, 1)  # every thread, should a library have started one
    _allow_all(zygote, RULE_SYSCALLS + ZYGOTE_SYSCALLS, sc.ALLOW)
    # fork (glibc: clone without CLONE_VM or CLONE_THREAD); never threads or vfork
    zygote.add_rule(sc.ALLOW, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_VM | _CLONE_THREAD, 0))
    zygote.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # so that libc falls back to clone
    return zygote


def limit_memory(memory_mb: int) -> None:
    """Cap the address space at what the process maps now plus ``memory_mb`` (inherited by
    forked rule processes, which start from the same mappings); no core dumps, no files."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    if memory_mb > 0:
        with open("/proc/self/statm") as fh:
            mapped = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = mapped + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class RuleProcessLockdown:
    """Prepared in the zygote before its own lockdown; :meth:`apply` then confines a freshly
    forked rule process.

    The strict filter is compiled to BPF once, here (libseccomp would regenerate it in
    every rule process, which cost milliseconds per fork), and installed after each fork
    with the ``seccomp`` system call itself.
    """

    def __init__(self, confine: bool):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        self._prctl, self._syscall = libc.prctl, libc.syscall
        self._program = None
        if confine:
            import pyseccomp as sc

            read_end, write_end = os.pipe()
            with os.fdopen(write_end, "wb") as sink:
                rule_filter().export_bpf(sink)
            with os.fdopen(read_end, "rb") as source:
                code = source.read()
            instructions = (ctypes.c_uint64 * (len(code) // 8)).from_buffer_copy(code)

            class SockFprog(ctypes.Structure):
                _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

            self._instructions = instructions  # kept alive with the program that points at it
            self._program = SockFprog(len(instructions), ctypes.addressof(instructions))
            self._seccomp_nr = sc.resolve_syscall(sc.Arch.NATIVE, "seccomp")
            self._byref = ctypes.byref

    def apply(self, zygote_pid: int, cpu_hard_s: int) -> None:
        """Die with the zygote, cap CPU time (``cpu_hard_s`` > 0), then load the strict filter."""
        if self._prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0) != 0 or os.getppid() != zygote_pid:
            os._exit(UNCONFINED_EXIT)  # could not tie this process to the zygote, or the zygote is gone
        if cpu_hard_s > 0:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_hard_s, cpu_hard_s))
        if self._program is not None:
            # seccomp(SECCOMP_SET_MODE_FILTER, 0, &program); no_new_privs is already set
            # (inherited from the zygote's own filter)
            if self._syscall(self._seccomp_nr, _SECCOMP_SET_MODE_FILTER, 0, self._byref(self._program)) != 0:
                os._exit(UNCONFINED_EXIT)
