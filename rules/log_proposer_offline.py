"""The offline log proposer: rules over raw log windows composed by a search, no LLM.

A rule is a conjunction of window conditions on line patterns (Drain templates turned into
regular expressions, and words such as ``FATAL``):

- ``has``: some line matches the pattern (an error template, a keyword);
- ``lacks``: no line matches it (only next to another condition);
- ``at_least``: at least k lines match it (a burst);
- ``missing``: a line matches A but none matches B, where B follows A in the normal
  training windows (a step of a workflow is missing);
- ``out_of_order``: a line of B comes before any line of A, where A precedes B in the normal
  training windows (an order violation);
- ``unseen``: a line fits none of the templates of the normal training windows.

``propose`` runs a beam search on the TRAINING part only, scored by window F1 (after AND/OR
with a base detector); different seeds search different bootstrap samples of the training
windows. ``mutate`` removes a condition, changes a count threshold or adds a ``lacks``.
Every proposal is rendered as a commented rule file; the loop checks and validates that
file in the sandbox. The search counts with the rule file's own patterns
(:class:`~anomamind.rules.log_features.PatternTable`), so it scores what the file flags.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from anomamind.eval.point_metrics import point_prf
from anomamind.rules.log_data import LogPart
from anomamind.rules.log_features import Pattern, PatternTable, message_pattern, template_patterns, word_patterns
from anomamind.rules.proposer import Candidate, SearchProposer
from anomamind.rules.scoring import combine

COUNT_LEVELS = (2, 3, 5, 10, 20, 50)
INVARIANT_SHARE = 0.95  # "B follows A" must hold in this share of the normal windows with A
MAX_PAIRS = 150


@dataclass(frozen=True)
class LogCondition:
    kind: str  # has | lacks | at_least | missing | out_of_order | unseen
    a: int = -1  # pattern index
    b: int = -1  # second pattern (missing, out_of_order)
    k: int = 1  # at_least: minimum number of lines


@dataclass(frozen=True)
class LogRuleSpec:
    """A conjunction of window conditions: the offline log proposer's rule."""

    conditions: tuple[LogCondition, ...]

    def key(self) -> tuple:
        return tuple(sorted((c.kind, c.a, c.b, c.k) for c in self.conditions))


class LogRuleSearch:
    """Candidate conditions on the training part and their window masks."""

    def __init__(self, part: LogPart, max_words: int = 30):
        self.part = part
        self.patterns: list[Pattern] = template_patterns(part) + word_patterns(part, limit=max_words)
        normal = ~part.labels.astype(bool)
        # templates of the normal training windows: what "unseen" compares against
        normal_rows = np.concatenate([part.windows[w] for w in np.flatnonzero(normal)]) if normal.any() else []
        normal_columns = set(np.unique(part.columns[normal_rows]).tolist()) - {-1}
        self.known = [p for p in self.patterns if p.column >= 0 and p.column in normal_columns]
        self.table = PatternTable(part, self.patterns, self.known)
        self.candidates = self._candidates(normal)

    def _candidates(self, normal: np.ndarray) -> list[LogCondition]:
        counts, first = self.table.counts, self.table.first
        present = counts > 0
        anomalous = ~normal
        out = [LogCondition("has", a=p) for p in range(len(self.patterns)) if present[anomalous, p].any()]
        for p in range(len(self.patterns)):
            top = counts[anomalous, p].max(initial=0)
            out += [LogCondition("at_least", a=p, k=k) for k in COUNT_LEVELS if k <= top]
        if self.known and self.table.unseen[anomalous].any():
            out.append(LogCondition("unseen"))
        pairs = []
        n_patterns = len(self.patterns)
        for a in range(n_patterns):
            with_a = normal & present[:, a]
            if with_a.sum() < 3:
                continue
            for b in range(n_patterns):
                if a == b:
                    continue
                both = with_a & present[:, b]
                support = int(both.sum())
                if support >= INVARIANT_SHARE * with_a.sum():  # B follows A: missing B is suspicious
                    pairs.append((support, LogCondition("missing", a=a, b=b)))
                if support >= 3 and (first[both, a] < first[both, b]).mean() >= INVARIANT_SHARE:
                    pairs.append((support, LogCondition("out_of_order", a=a, b=b)))
        pairs.sort(key=lambda item: -item[0])
        out += [c for _, c in pairs[:MAX_PAIRS]]
        return out

    def mask(self, c: LogCondition) -> np.ndarray:
        counts, first = self.table.counts, self.table.first
        if c.kind == "has":
            return counts[:, c.a] > 0
        if c.kind == "lacks":
            return counts[:, c.a] == 0
        if c.kind == "at_least":
            return counts[:, c.a] >= c.k
        if c.kind == "missing":
            return (counts[:, c.a] > 0) & (counts[:, c.b] == 0)
        if c.kind == "out_of_order":
            return first[:, c.b] < first[:, c.a]
        if c.kind == "unseen":
            return self.table.unseen > 0
        raise ValueError(f"unknown log condition kind {c.kind!r}")

    def flags(self, spec: LogRuleSpec) -> np.ndarray:
        out = np.ones(len(self.part.windows), dtype=bool)
        for c in spec.conditions:
            out &= self.mask(c)
        return out


class LogOfflineProposer(SearchProposer):
    """Beam search over log window conditions on the training part (see the module docstring)."""

    name = "offline"

    def __init__(self, train: LogPart, *, combine_mode: str | None = None, beam_width: int = 6,
                 max_conditions: int = 2, bootstrap: float = 0.8, max_words: int = 30, name_prefix: str = "rule"):
        self.train = train
        self.search = LogRuleSearch(train, max_words=max_words)
        self.combine_mode = combine_mode
        self.beam_width = beam_width
        self.max_conditions = max_conditions
        self.bootstrap = bootstrap
        self.name_prefix = name_prefix
        self._counter = 0

    # -- scoring ------------------------------------------------------------------------
    def _rows(self, seed: int) -> np.ndarray:
        """Training windows scored this round: all (seed 0) or a bootstrap sample."""
        n = len(self.train.windows)
        if not seed or n < 4:
            return np.arange(n)
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(n, size=max(2, int(round(self.bootstrap * n))), replace=False))

    def score(self, spec: LogRuleSpec, rows: np.ndarray | None = None) -> float:
        flags = combine(self.train.base, self.search.flags(spec), self.combine_mode)
        rows = np.arange(flags.size) if rows is None else rows
        return point_prf(self.train.labels[rows], flags[rows])[2]

    def _search(self, rows: np.ndarray) -> list[tuple[float, LogRuleSpec]]:
        """Every rule the beam search scored on the windows ``rows``, best first."""
        scored: dict[tuple, tuple[float, LogRuleSpec]] = {}

        def consider(spec: LogRuleSpec) -> None:
            if spec.key() not in scored:
                scored[spec.key()] = (self.score(spec, rows), spec)

        def ranked() -> list[tuple[float, LogRuleSpec]]:
            return sorted(scored.values(), key=lambda x: (-x[0], len(x[1].conditions)))

        for c in self.search.candidates:
            consider(LogRuleSpec((c,)))
        extensions = self.search.candidates + [LogCondition("lacks", a=p) for p in range(len(self.search.patterns))]
        beam = ranked()[: self.beam_width]
        for _ in range(self.max_conditions - 1):
            for _, spec in beam:
                for c in extensions:
                    if c not in spec.conditions:
                        consider(LogRuleSpec(spec.conditions + (c,)))
            beam = ranked()[: self.beam_width]
        return ranked()

    # -- rules ----------------------------------------------------------------------------
    def _candidate(self, spec: LogRuleSpec, origin: str, seed: int | None, parent: str | None = None) -> Candidate:
        self._counter += 1
        name = f"{self.name_prefix}-{self._counter:03d}"
        note = f"{origin} by the offline search" + (f" from {parent}" if parent else "")
        thresholds = {f"{c.kind}#{i}": c.k for i, c in enumerate(spec.conditions) if c.kind == "at_least"}
        return Candidate(name=name, source=render_log_rule(spec, self.search, name, note), proposer=self.name,
                         parent=parent, origin=origin, seed=seed, thresholds=thresholds, spec=spec)

    def propose(self, n: int, seed: int) -> list[Candidate]:
        """Up to ``n`` rules: first (up to ``n - 2``) by sequential covering (each search runs on
        the training windows whose anomalies the earlier proposals did not catch, so the rules
        complement each other when OR-ed), then the best alternatives to the first rule (rules
        that flag different windows), for the validation part to choose from."""
        rows = self._rows(seed)
        labels = self.train.labels.astype(bool)
        chosen: list[LogRuleSpec] = []
        first_search: list[tuple[float, LogRuleSpec]] = []
        while len(chosen) < max(1, n - 2) and labels[rows].any():
            ranked = self._search(rows)
            first_search = first_search or ranked
            if not ranked or ranked[0][0] <= 0:
                break
            chosen.append(ranked[0][1])
            rows = rows[~(self.search.flags(ranked[0][1]) & labels)[rows]]
        seen = [self.search.flags(spec) for spec in chosen]
        for f1, spec in first_search:
            if len(chosen) >= n or f1 <= 0:
                break
            flags = self.search.flags(spec)
            if not any(np.array_equal(flags, other) for other in seen):
                chosen.append(spec)
                seen.append(flags)
        return [self._candidate(spec, "proposed", seed) for spec in chosen]

    def mutate(self, candidate: Candidate, seed: int) -> list[Candidate]:
        spec: LogRuleSpec | None = candidate.spec
        if spec is None:
            return []
        rng = np.random.default_rng(seed)
        conds = spec.conditions
        variants: list[LogRuleSpec] = []
        if len(conds) > 1:  # remove a condition
            drop = int(rng.integers(len(conds)))
            variants.append(LogRuleSpec(conds[:drop] + conds[drop + 1:]))
        for i, c in enumerate(conds):  # change a count threshold
            if c.kind == "at_least":
                for k in (max(2, c.k // 2), c.k * 2):
                    if k != c.k:
                        variants.append(LogRuleSpec(conds[:i] + (replace(c, k=k),) + conds[i + 1:]))
        used = {c.a for c in conds}
        spare = [p for p in range(len(self.search.patterns)) if p not in used]
        if spare:  # exclude windows that also hold some pattern (a false-alarm context)
            p = int(rng.choice(spare))
            variants.append(LogRuleSpec(conds + (LogCondition("lacks", a=p),)))
        return [self._candidate(v, "mutated", seed, parent=candidate.name) for v in variants
                if any(c.kind != "lacks" for c in v.conditions)]


def render_log_rule(spec: LogRuleSpec, search: LogRuleSearch, name: str, note: str = "") -> str:
    """The rule file of ``spec``: compiled patterns, then one commented test per condition."""
    patterns = search.patterns
    used = sorted({i for c in spec.conditions for i in (c.a, c.b) if i >= 0})
    label = {p: f"P{p}" for p in used}
    unseen = any(c.kind == "unseen" for c in spec.conditions)
    on_messages = unseen or any(patterns[p].scope == "message" for p in used)
    log_format = search.part.data.format
    header = message_pattern(log_format)
    texts = {p: "messages" if patterns[p].scope == "message" else "lines" for p in used}
    lines = [
        f'"""Rule {name}: flags a window of log lines when ALL conditions below hold'
        f'{" (" + note + ")" if note else ""}."""',
        "",
        "import re",
        "",
    ]
    if on_messages and header:
        lines += [f"# The header fields of a {log_format} line; the message is what follows them.",
                  f"MESSAGE = re.compile({_literal(header)})"]
    for p in used:
        lines.append(f"# {label[p]}: {patterns[p].meaning}" + (" (a whole message)" if texts[p] == "messages" else ""))
        lines.append(f"{label[p]} = re.compile({_literal(patterns[p].regex)})")
    if unseen:
        lines.append(f"# The {len(search.known)} templates of the normal training windows.")
        lines.append("KNOWN = [")
        lines += [f"    re.compile({_literal(p.regex)}),  # {p.meaning}" for p in search.known]
        lines.append("]")
    if on_messages and header:
        lines += ["", "", "def message(line):",
                  '    """The message part of a raw line (the whole line when it has no header)."""',
                  "    match = MESSAGE.match(line)",
                  '    return match.group("content") if match else line']
    if any(c.kind == "out_of_order" for c in spec.conditions):
        lines += ["", "", "def first(pattern, texts):",
                  '    """Position of the first text that matches ``pattern`` (len(texts) if none)."""',
                  "    return next((i for i, text in enumerate(texts) if pattern.search(text)), len(texts))"]
    lines += ["", "", "def detect(lines: list[str]) -> bool:",
              '    """True when this window of raw log lines is anomalous."""']
    if on_messages:
        lines.append("    messages = [message(line) for line in lines]" if header else "    messages = lines")
    for c in spec.conditions:
        a, b = label.get(c.a), label.get(c.b)
        ta, tb = texts.get(c.a), texts.get(c.b)
        if c.kind == "has":
            lines += [f"    # Condition: some line matches {a} ({patterns[c.a].meaning}).",
                      f"    if not any({a}.search(text) for text in {ta}):"]
        elif c.kind == "lacks":
            lines += [f"    # Condition: no line matches {a} ({patterns[c.a].meaning}).",
                      f"    if any({a}.search(text) for text in {ta}):"]
        elif c.kind == "at_least":
            burst = ": a burst of one message" if patterns[c.a].scope == "message" else ""
            lines += [f"    # Condition: at least {c.k} lines match {a} ({patterns[c.a].meaning}){burst}.",
                      f"    if sum(1 for text in {ta} if {a}.search(text)) < {c.k}:"]
        elif c.kind == "missing":
            lines += [f"    # Condition: a line matches {a} but none matches {b}, which follows it in normal "
                      "windows (a missing step).",
                      f"    if not any({a}.search(text) for text in {ta}) or any({b}.search(text) for text in {tb}):"]
        elif c.kind == "out_of_order":
            lines += [f"    # Condition: a line matching {b} comes before any line matching {a}; normally {a} "
                      "comes first (an order violation).",
                      f"    if not first({b}, {tb}) < first({a}, {ta}):"]
        else:  # unseen
            lines += ["    # Condition: some line fits none of the known templates (a template never seen in "
                      "normal operation).",
                      "    if all(any(p.search(text) for p in KNOWN) for text in messages):"]
        lines.append("        return False")
    lines.append("    return True")
    return "\n".join(lines) + "\n"


def _literal(regex: str) -> str:
    """``regex`` as a Python literal a reviewer can read (a raw string when possible)."""
    if '"' in regex or regex.endswith("\\") or "\n" in regex:
        return repr(regex)
    return f'r"{regex}"'
