"""What rule code may do: the import allow-lists, the vetted builtins, the static check.

Two modalities share one policy: series rules (``detect(values)`` over a float window)
and log rules (``detect(lines)`` over a window of log lines); they differ only in the
modules they may import. The static check (an AST walk, before any code runs) is a fast
first filter that turns the usual mistakes and the known escape routes into clear
messages. It is not the guarantee: Python offers too many ways around any such list. What
holds is the OS confinement of the process that runs the rule
(:mod:`anomamind.rules.confinement`).
"""

from __future__ import annotations

import ast

#: Modules (and their submodules) a series rule may import.
ALLOWED_MODULES: tuple[str, ...] = ("numpy", "scipy", "math", "anomamind.rules.features", "anomamind.tools")

#: Modules (and their submodules) a log rule may import.
LOG_ALLOWED_MODULES: tuple[str, ...] = ("re", "math", "collections", "itertools", "statistics", "string", "numpy")

#: The rule modalities: what ``detect`` receives, and the modules it may import.
MODALITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "series": ("values", ALLOWED_MODULES),
    "logs": ("lines", LOG_ALLOWED_MODULES),
}

#: Builtins a rule may use: pure computation, no I/O, no reflection, no code execution.
SAFE_BUILTIN_NAMES: tuple[str, ...] = (
    "abs", "all", "any", "bool", "dict", "divmod", "enumerate", "filter", "float", "frozenset",
    "int", "isinstance", "len", "list", "map", "max", "min", "pow", "range", "reversed",
    "round", "set", "slice", "sorted", "str", "sum", "tuple", "zip", "True", "False", "None",
    "ArithmeticError", "Exception", "FloatingPointError", "IndexError", "KeyError",
    "ValueError", "ZeroDivisionError", "TypeError",
)

#: Attribute (and module path) names a rule may not touch: file I/O, raw memory and
#: interpreter escape hatches that numpy and scipy expose (``np.load``, ``arr.ctypes``,
#: ``np.lib.npyio.os`` ...), frame and generator introspection (``gi_frame.f_back.f_globals``
#: reaches the caller's globals), ``str.format`` (its fields walk attributes the source
#: never names) and the usual tools of an escape (``import_module``, ``environ``, ...).
FORBIDDEN_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "load", "save", "savez", "savez_compressed", "fromfile", "tofile", "loadtxt", "savetxt",
        "genfromtxt", "fromregex", "memmap", "DataSource", "npyio", "ctypes", "ctypeslib",
        "f2py", "testing", "distutils", "os", "sys", "subprocess", "builtins", "importlib",
        "socket", "shutil", "pathlib", "io", "pickle", "dump", "dumps", "open",
        "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code",
        "ag_await", "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame",
        "tb_next", "format", "format_map", "import_module", "environ", "system", "popen", "fork",
        "setattr", "getattr", "delattr",
    }
)

#: Names a rule may not use even though Python would resolve them.
FORBIDDEN_NAMES: frozenset[str] = frozenset(
    {
        "open", "exec", "eval", "compile", "__import__", "getattr", "setattr", "delattr",
        "globals", "locals", "vars", "input", "breakpoint", "help", "exit", "quit", "type",
        "object", "memoryview", "super", "classmethod", "staticmethod", "property",
    }
)


def allowed_modules(modality: str = "series") -> tuple[str, ...]:
    """The import allow-list of ``modality`` ("series" or "logs")."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown rule modality {modality!r} (expected one of {', '.join(MODALITIES)})")
    return MODALITIES[modality][1]


def module_allowed(name: str, modality: str = "series") -> bool:
    """True for an allow-listed module of ``modality`` or one of its submodules."""
    return any(name == allowed or name.startswith(allowed + ".") for allowed in allowed_modules(modality))


def _hidden(name: str) -> bool:
    """A private (``_x``) or forbidden name, or a module path with one in it."""
    return any(part.startswith("_") or part in FORBIDDEN_ATTRIBUTES for part in name.split("."))


def static_problems(source: str, modality: str = "series") -> list[str]:
    """Everything the static check finds wrong with ``source`` (empty list: it passes).

    Checks: the code parses; imports come from the allow-list only (no relative imports,
    no private or forbidden module or name in them, e.g. ``scipy._lib`` or ``numpy.testing``);
    no name starting with a double underscore and no private attribute (``_x``); no
    forbidden builtin or attribute (file I/O, reflection, frames, ``str.format``, code
    execution); no assignment to attributes; a top-level ``def detect`` exists.
    ``modality`` ("series" or "logs") picks the import allow-list.
    """
    allowed_modules(modality)  # an unknown modality is a caller's error, raised here
    argument = MODALITIES[modality][0]
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        return [f"syntax error at line {err.lineno}: {err.msg}"]
    problems: list[str] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not module_allowed(alias.name, modality) or _hidden(alias.name):
                    problems.append(f"line {line}: import of {alias.name!r} is not allowed")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                problems.append(f"line {line}: relative imports are not allowed")
            elif _hidden(node.module or "") or (not module_allowed(node.module or "", modality) and not all(
                module_allowed(f"{node.module}.{alias.name}", modality) for alias in node.names
            )):
                problems.append(f"line {line}: import from {node.module!r} is not allowed")
            for alias in node.names:
                if alias.name == "*" or _hidden(alias.name):
                    problems.append(f"line {line}: importing {alias.name!r} is not allowed")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_") or node.attr in FORBIDDEN_ATTRIBUTES:
                problems.append(f"line {line}: attribute {node.attr!r} is not allowed")
            elif not isinstance(node.ctx, ast.Load):  # e.g. np.abs = ...: would leak into other rules
                problems.append(f"line {line}: assigning or deleting attribute {node.attr!r} is not allowed")
        elif isinstance(node, ast.Name):
            if node.id.startswith("__") or node.id in FORBIDDEN_NAMES:
                problems.append(f"line {line}: name {node.id!r} is not allowed")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            problems.append(f"line {line}: global/nonlocal statements are not allowed")
        elif isinstance(node, (ast.AsyncFunctionDef, ast.Await, ast.Yield, ast.YieldFrom)):
            problems.append(f"line {line}: async code and generators are not allowed")
    if not any(isinstance(n, ast.FunctionDef) and n.name == "detect" for n in tree.body):
        problems.append(f"the rule defines no top-level function detect({argument})")
    return problems
