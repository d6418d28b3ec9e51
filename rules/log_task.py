"""Log rules in the shared training loop: one flag per window of log lines, window F1.

:class:`LogTask` is the log modality's :class:`~anomamind.rules.loop.RuleTask`: a rule is
checked (static check with the log rules' import allow-list, one run in a fresh sandbox
process) on the contrastive sample of the training part, run on every validation window in
the long-lived sandbox worker, and scored by window-level F1 after AND/OR with a base
detector. A new rule that gets contrastive samples wrong, and a rule that scores below its
parent, have the windows in question fed back to the proposer for refinement.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from anomamind.envs.log_windows import LogWindowSpec
from anomamind.eval.point_metrics import point_prf
from anomamind.rules.log_data import LogPart
from anomamind.rules.log_sampler import ContrastiveSample, describe_window
from anomamind.rules.loop import Evaluated
from anomamind.rules.rule import Rule, RuleSet
from anomamind.rules.sandbox import SandboxWorker, check_log_rule
from anomamind.rules.scoring import combine

MAX_EXAMPLES = 3


class LogTask:
    """How the loop checks, runs and scores log rules (see the module docstring)."""

    def __init__(self, train: LogPart, validation: LogPart, sample: ContrastiveSample, window: LogWindowSpec,
                 combine_mode: str | None = None, max_lines_shown: int = 14):
        self.train = train
        self.validation = validation
        self.sample = sample
        self.window = window
        self.mode = combine_mode
        self.max_lines_shown = max_lines_shown
        self.sample_texts = train.texts(sample.windows)
        self.validation_texts = validation.texts()

    def check(self, source: str, name: str, checker: SandboxWorker) -> np.ndarray:
        return check_log_rule(source, self.sample_texts, name=name, checker=checker)

    def run(self, source: str, name: str, worker: SandboxWorker) -> np.ndarray:
        return worker.run_lines(source, self.validation_texts, name=name).astype(bool)

    def score(self, flags: np.ndarray) -> np.ndarray:
        return np.array([point_prf(self.validation.labels, combine(self.validation.base, flags, self.mode))[2]])

    def regression_report(self, child: Evaluated, parent: Evaluated) -> str:
        part = self.validation
        base = part.base
        truth = part.labels.astype(bool)
        child_flags = combine(base, child.flags, self.mode)
        parent_flags = combine(base, parent.flags, self.mode)
        worse = np.flatnonzero((child_flags != truth) & (parent_flags == truth))
        lines = [f"Validation window F1 fell from {parent.f1:.3f} ({parent.candidate.name}) to {child.f1:.3f}; "
                 f"the new rule is wrong on {worse.size} validation window(s) its parent got right."]
        lines += self._windows(part, worse[:MAX_EXAMPLES], child_flags[worse[:MAX_EXAMPLES]])
        return "\n".join(lines)

    def sample_report(self, result: Evaluated) -> str | None:
        if result.sample_flags is None:
            return None
        windows = np.asarray(self.sample.windows)
        base = None if self.train.base is None else self.train.base[windows]
        flags = combine(base, result.sample_flags.astype(bool), self.mode)
        wrong = np.flatnonzero(flags != self.sample.labels.astype(bool))
        if wrong.size == 0:
            return None
        lines = [f"On the contrastive training sample the rule is wrong on {wrong.size} of {windows.size} windows."]
        shown = wrong[:MAX_EXAMPLES]
        lines += self._windows(self.train, windows[shown], flags[shown])
        return "\n".join(lines)

    def _windows(self, part: LogPart, windows: np.ndarray, flagged: np.ndarray) -> list[str]:
        """Each window with its truth and the rule's verdict, for the proposer to read."""
        out = []
        for w, said in zip(windows, flagged):
            truth = "ANOMALOUS" if part.labels[w] else "normal"
            verdict = "flagged it" if said else "did not flag it"
            out.append(f"- a {truth} window ({len(part.windows[w])} lines; the rule {verdict}; "
                       "anomalous lines marked *):")
            out.append(describe_window(part, int(w), self.max_lines_shown))
        return out

    def rule_set(self, rules: list[Rule], combine_with: dict[str, str] | None, dataset: str) -> RuleSet:
        return RuleSet(rules, window_length=0, dataset=dataset, combine_with=combine_with, modality="logs",
                       window=dataclasses.asdict(self.window))
