"""Which optional extra of the package provides a module, so that a command whose optional
dependencies are missing says in one line what to install instead of printing a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

#: Top-level module -> the extra in pyproject.toml that installs it.
EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "train",
    "transformers": "train",
    "trl": "train",
    "peft": "train",
    "accelerate": "train",
    "datasets": "train",
    "gguf": "train",
    "stumpy": "matrixprofile",
    "vllm": "vllm",
}

#: Exit code of a command stopped by a missing optional dependency.
MISSING_EXTRA = 3


def missing_extra_message(err: ModuleNotFoundError, command: str) -> str | None:
    """One line naming the extra that provides the missing module, or None when the module
    is not an optional dependency (then the error is a real bug and should propagate)."""
    module = (err.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    torch_first = " (CPU only: pip install torch==2.13.0 first)" if extra == "train" else ""
    return (
        f"{command}: the optional '{extra}' dependencies are not installed (no module {module!r}): "
        f"pip install -e '.[{extra}]' in the checkout{torch_first}"
    )


def _missing_module(err: BaseException) -> ModuleNotFoundError | None:
    """The ModuleNotFoundError behind ``err``, if any (libraries with lazy imports, such as
    TRL, wrap it in their own error)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ModuleNotFoundError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def run_or_name_missing_extra(run: Callable[[], int], command: str) -> int:
    """``run()``'s exit code; a missing optional dependency prints one line (which extra
    to install) and gives :data:`MISSING_EXTRA` instead of a traceback."""
    try:
        return run()
    except Exception as err:
        missing = _missing_module(err)
        message = missing_extra_message(missing, command) if missing is not None else None
        if message is None:
            raise
        print(message, file=sys.stderr)
        return MISSING_EXTRA
