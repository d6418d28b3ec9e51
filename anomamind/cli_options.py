"""Command-line pieces the subcommands share, so each is spelled and parsed one way.

- ``--set KEY=VALUE`` (repeatable, value parsed as YAML) is the one override syntax: a
  config field in ``train``, ``sweep`` and ``rules train``; a detector option in ``detect``
  and ``prepare`` (``disable=[localization]``, ``evaluator=false``: the ablation switches)
  and, prefixed by the detector's name, in ``bench`` (``--set heuristic-agent.evaluator=false``).
- Old spellings stay for one release as :class:`DeprecatedAlias` options: they work, and
  say on stderr what to write instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from anomamind.config import ConfigError, parse_assignment

#: Help of a detector's ``--set`` (detect, prepare); bench's is per detector name.
DETECTOR_SET_HELP = (
    "a detector option, e.g. disable=[localization], evaluator=false, causal=true, window=50; "
    "for the agents, any other key overrides their config file (knowledge.YAHOO.thresholds.spike=7). "
    "Repeatable; the value is parsed as YAML"
)


def add_set_option(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--set KEY=VALUE`` (repeatable) to ``parser``; parsed values land in ``args.set``."""
    parser.add_argument("--set", dest="set", action="append", default=[], metavar="KEY=VALUE", help=help)


def warn_deprecated(old: str, new: str) -> None:
    """One line on stderr: the old spelling still works, this is what to write instead."""
    print(f"anomamind: note: '{old}' is deprecated and will be removed; write '{new}'", file=sys.stderr)


class DeprecatedAlias(argparse.Action):
    """An old option kept for one release. ``convert(values)`` gives ``(dest, value, new
    spelling)``: the value is stored in ``dest`` (appended when ``dest`` is ``set``) and
    the new spelling is printed as a deprecation note."""

    def __init__(self, option_strings: list[str], dest: str,
                 convert: Callable[[Any], tuple[str, Any, str]], **kwargs: Any) -> None:
        self.convert = convert
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        dest, value, new = self.convert(values)
        old = " ".join([option_string or self.option_strings[0], *([values] if isinstance(values, str) else [])])
        warn_deprecated(old, new)
        if dest == "set":
            value = list(getattr(namespace, "set", None) or []) + [value]
        setattr(namespace, dest, value)


def add_deprecated_alias(parser: argparse.ArgumentParser | argparse._ActionsContainer, flag: str, new: str,
                         convert: Callable[[Any], tuple[str, Any, str]], *, takes_value: bool = True,
                         metavar: str | None = None) -> None:
    """Register ``flag`` as a :class:`DeprecatedAlias` of ``new`` (named in its help)."""
    parser.add_argument(flag, action=DeprecatedAlias, convert=convert, nargs=None if takes_value else 0,
                        metavar=metavar, dest=f"deprecated_{flag.lstrip('-').replace('-', '_')}",
                        default=argparse.SUPPRESS, help=f"deprecated spelling of {new}")


def set_to_set(item: str) -> tuple[str, str, str]:
    """Converter for aliases whose value already is a ``KEY=VALUE`` item."""
    return "set", item, f"--set {item}"


def detector_options(items: list[str], detector: str) -> dict[str, Any]:
    """``--set`` items of a one-detector command as the detector's options; a key may carry
    the detector's name as a prefix (``heuristic-agent.evaluator=false``), as in ``bench``."""
    options: dict[str, Any] = {}
    for item in items:
        key, value = _parse(item)
        options[key.removeprefix(detector + ".")] = value
    return options


def options_per_detector(items: list[str], detectors: list[str]) -> dict[str, dict[str, Any]]:
    """``--set NAME.key=value`` items of a many-detector command, by detector name
    (``["sr.score_window=21"]`` -> ``{"sr": {"score_window": 21}}``). A name may contain
    dots (``checkpoint:runs/q0.6b``), so the longest ``--detector`` name that prefixes the
    key wins."""
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        key, value = _parse(item)
        names = [name for name in detectors if key.startswith(name + ".") and len(key) > len(name) + 1]
        if not names:
            raise ConfigError(f"--set {item!r}: the key must start with one of the --detector names "
                              f"{detectors} and a dot, e.g. --set {detectors[0]}.KEY=VALUE")
        name = max(names, key=len)
        options.setdefault(name, {})[key[len(name) + 1:]] = value
    return options


def _parse(item: str) -> tuple[str, Any]:
    try:
        return parse_assignment(item)
    except ConfigError as err:
        raise ConfigError(f"--set: {err}") from None
