"""What log rules look for in a window of raw lines, computed once per part for the search.

A log rule tests regular expressions on the lines of a window: a Drain template turned into
a pattern that must match a line's whole message (constant tokens kept, parameters matched
by any characters within a token), or a word such as ``FATAL`` anywhere in the raw line.
The message is cut out of the raw line with the log format's own header regex, which the
rule file carries (:func:`message_of`). :class:`PatternTable` records, for a part of the split, which lines match each
pattern and, per window, how many lines match and where the first one is; the offline
search composes its conditions from these numbers. They are computed with the very
patterns a rule file carries, so the search scores exactly what the rendered rule flags.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from anomamind.envs.log_formats import FORMATS
from anomamind.rules.log_data import LogPart

#: Drain's parameter markers: ``<*>`` and the masks' names (``<IP>``, ``<HEX>``).
_PARAMETER = re.compile(r"<\*>|<[A-Z]+>")
_WORD = re.compile(r"[A-Za-z][A-Za-z_]{2,}")


@dataclass(frozen=True)
class Pattern:
    """A regular expression a rule searches each line with, and what it stands for."""

    regex: str
    meaning: str  # e.g. 'template "data TLB error interrupt"' or 'the word "FATAL"'
    column: int = -1  # the template column a template pattern stands for
    scope: str = "line"  # "line": searched in the raw line; "message": in the line's message

    def compile(self) -> re.Pattern:
        return re.compile(self.regex)


def template_regex(template: str) -> str:
    """A regex that matches a whole message of the Drain ``template``.

    Constant tokens must appear as they are, a parameter stands for any characters inside
    one token, tokens are separated by whitespace.
    """
    tokens = []
    for token in template.split():
        pieces = _PARAMETER.split(token)
        tokens.append(r"\S+" if not "".join(pieces) else r"\S*".join(re.escape(p) for p in pieces))
    return r"^\s*" + r"\s+".join(tokens) + r"\s*$"


def message_pattern(log_format: str) -> str:
    """Regex source that splits a raw line (label field removed) of ``log_format`` into header
    fields and the message (group ``content``); "" for an unknown format."""
    return FORMATS[log_format].text_pattern if log_format in FORMATS else ""


def message_of(pattern: re.Pattern | None, line: str) -> str:
    """The message of ``line`` (the whole line when it has no header, e.g. a stack-trace line)."""
    if pattern is None:
        return line
    match = pattern.match(line)
    return match.group("content") if match else line


def word_regex(word: str) -> str:
    """A regex that finds ``word`` as a whole word."""
    return r"\b" + re.escape(word) + r"\b"


def template_patterns(part: LogPart) -> list[Pattern]:
    """One pattern per Drain template that occurs in ``part`` (in column order)."""
    seen = np.unique(part.columns[part.start:part.end])
    return [Pattern(template_regex(part.templates[c]), f'template "{part.templates[c]}"', int(c), "message")
            for c in seen if c >= 0 and part.templates[c].strip()]


def word_patterns(part: LogPart, limit: int = 30, min_windows: int = 2) -> list[Pattern]:
    """Words whose presence best separates the part's anomalous windows from its normal ones.

    Words are ranked by the F1 of "the window contains the word" on the part's windows
    (a cheap screen on whitespace-split words); the ``limit`` best become patterns.
    """
    labels = part.labels.astype(bool)
    present: Counter[str] = Counter()
    in_anomalous: Counter[str] = Counter()
    for rows, anomalous in zip(part.windows, labels):
        words = {w for i in rows for w in _WORD.findall(part.data.lines[i])}
        present.update(words)
        if anomalous:
            in_anomalous.update(words)
    n_anomalous = int(labels.sum())
    scored = []
    for word, tp in in_anomalous.items():
        if present[word] >= min_windows:
            scored.append((2 * tp / (present[word] + n_anomalous), word))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [Pattern(word_regex(w), f'the word "{w}"') for _, w in scored[:limit]]


class PatternTable:
    """Per line and per window of one part: which patterns match (see the module docstring).

    ``counts[w, p]`` is the number of lines of window ``w`` that match pattern ``p``;
    ``first[w, p]`` the position (within the window) of the first such line, or the
    window's length when there is none. ``unseen[w]`` counts the window's lines that match
    none of the ``known`` patterns.
    """

    def __init__(self, part: LogPart, patterns: list[Pattern], known: list[Pattern] | None = None):
        self.part = part
        self.patterns = patterns
        source = message_pattern(part.data.format)
        header = re.compile(source) if source else None
        lines = part.data.lines[part.start:part.end]
        messages = [message_of(header, line) for line in lines]
        match = np.zeros((part.n_lines, len(patterns)), dtype=bool)
        for p, pattern in enumerate(patterns):
            compiled = pattern.compile()
            texts = messages if pattern.scope == "message" else lines
            match[:, p] = [compiled.search(text) is not None for text in texts]
        fits_known = np.ones(part.n_lines, dtype=bool)
        if known:
            known_compiled = [p.compile() for p in known]
            fits_known = np.array([any(c.search(m) for c in known_compiled) for m in messages], dtype=bool)
        offset = part.start
        n_windows = len(part.windows)
        self.counts = np.zeros((n_windows, len(patterns)), dtype=np.int64)
        self.first = np.zeros((n_windows, len(patterns)), dtype=np.int64)
        self.unseen = np.zeros(n_windows, dtype=np.int64)
        for w, rows in enumerate(part.windows):
            block = match[rows - offset]
            self.counts[w] = block.sum(axis=0)
            self.first[w] = np.where(block.any(axis=0), block.argmax(axis=0), len(rows))
            self.unseen[w] = int((~fits_known[rows - offset]).sum())
