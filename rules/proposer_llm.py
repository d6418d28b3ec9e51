"""The LLM proposer: rules written (and repaired, refined, mutated) by a chat model.

Prompts are files in ``agents/prompts/rule_*.md`` (``$name`` placeholders, filled with
:class:`string.Template`; the dataset's name enters them quoted, the examples inside a
data section). Each call is one chat request through any
:class:`~anomamind.agents.backends.base.ChatBackend` (built from ``llm.backend``, with the
same timeout and retry settings as the agents' backends); the rule is the answer's
```python block. Prompts fit the backend's context (the proposal prompt shows fewer, then
shorter example windows when the full one does not fit). A request that fails, or a
prompt that cannot fit, is counted by kind (``failures``) and proposes nothing; a fatal
failure (refused credentials, an endpoint that does not answer) stops the training. The
proposer never runs code itself: the training loop checks every answer in the sandbox and
feeds errors and regressions back through :meth:`repair` and :meth:`refine`.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections import Counter
from string import Template
from typing import Any

import numpy as np

from anomamind.agents.backends.base import BackendError, ChatBackend
from anomamind.agents.budget import PromptTooLongError, check_budget
from anomamind.agents.untrusted import quote, with_data_rule
from anomamind.paths import PROMPT_DIR
from anomamind.rules import features
from anomamind.rules.data import SplitData
from anomamind.rules.loop import LLMOptions
from anomamind.rules.proposer import Candidate

log = logging.getLogger(__name__)

_CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)
MUTATIONS = (
    "remove the condition that matters least",
    "change the most important threshold (make it stricter or looser, your judgement)",
    "rewrite the rule freely with a different idea of what makes these points anomalous",
)
OBJECTIVES = {
    None: "The rule is scored by point-wise F1 against the true labels on other series.",
    "and": ("The rule's flags are AND-ed with an existing detector's: a point counts as anomalous only if "
            "both flag it. Write a rule that confirms true anomalies and rejects the detector's false alarms."),
    "or": ("The rule's flags are OR-ed with an existing detector's. Write a rule that finds anomalies such a "
           "detector misses, with few false alarms."),
}


#: Example windows (count, points each side of an anomaly) of the proposal prompt's
#: variants, longest first: the first that fits the context is sent.
EXAMPLE_SIZES: tuple[tuple[int | None, int], ...] = ((None, 10), (2, 10), (1, 10), (1, 4), (1, 1))


def chat_backend(options: LLMOptions) -> ChatBackend:
    """The chat backend the rule proposers talk to (``llm.backend``: any kind of
    configs/agents/llm.yaml's backends), its server checked at once: a dead endpoint or a
    refused key stops the training before the first proposal."""
    from anomamind.agents.backends.factory import backend_config, make_backend

    backend = make_backend(backend_config(options.backend, "llm.backend"))
    if hasattr(backend, "check"):
        backend.check()
    return backend


def load_prompt(name: str) -> Template:
    """The prompt template ``agents/prompts/<name>.md``; a clear error if it is missing."""
    path = PROMPT_DIR / f"{name}.md"
    if not path.is_file():
        raise FileNotFoundError(f"rule prompt {path} is missing")
    return Template(path.read_text())


def extract_code(text: str) -> str:
    """The rule code in a model answer: its first ```python block, else the whole text."""
    match = _CODE_BLOCK.search(text)
    return (match.group(1) if match else text).strip() + "\n"


def feature_api() -> str:
    """One line per public function of the feature library, for the system prompt."""
    lines = []
    for name, fn in inspect.getmembers(features, inspect.isfunction):
        if name.startswith("_") or fn.__module__ != features.__name__:
            continue
        doc = (inspect.getdoc(fn) or "").splitlines()[0]
        signature = str(inspect.signature(fn)).replace("'", "")  # annotations are strings here
        lines.append(f"  - `F.{name}{signature}`: {doc}")
    return "\n".join(lines)


def _ranges(flags: np.ndarray) -> list[tuple[int, int]]:
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    return list(zip(np.r_[idx[0], idx[breaks + 1]], np.r_[idx[breaks], idx[-1]]))


class LLMProposer:
    """Rules from a chat model, prompted with training windows and the feature library.

    A subclass for another modality (:class:`~anomamind.rules.log_proposer_llm.LogLLMProposer`)
    changes the prompt files (``prompts``), the ``mutations``, :meth:`system_prompt` and
    :meth:`propose_prompts`; the chat, repair, refine and mutate machinery is shared.
    """

    name = "llm"
    prompts = {"system": "rule_system", "propose": "rule_propose", "repair": "rule_repair",
               "refine": "rule_refine", "mutate": "rule_mutate"}
    mutations = MUTATIONS

    def __init__(
        self,
        backend: ChatBackend,
        train: SplitData,
        options: LLMOptions | None = None,
        *,
        combine_mode: str | None = None,
        name_prefix: str = "rule",
        dataset: str = "",
    ):
        self.backend = backend
        self.train = train
        self.options = options or LLMOptions()
        self.combine_mode = combine_mode
        self.name_prefix = name_prefix
        self.dataset = quote(dataset or name_prefix)
        self._counter = 0
        #: Requests that failed (by kind) or whose answer was cut at max_tokens, and the
        #: first error of each kind, for the rule set's manifest.
        self.failures: Counter[str] = Counter()
        self.first_errors: dict[str, str] = {}
        self.system = with_data_rule(self.system_prompt())

    # -- prompting ------------------------------------------------------------------------
    def system_prompt(self) -> str:
        window_length = max((b - a for a, b in self.train.bounds), default=0)
        return load_prompt(self.prompts["system"]).substitute(window_length=window_length, feature_api=feature_api())

    def propose_prompts(self, index: int, seed: int) -> list[str]:
        """The user prompt of proposal ``index`` of the round with ``seed``, longest first:
        the later ones show fewer, then shorter example windows (:data:`EXAMPLE_SIZES`)."""
        labels = self.train.labels
        lengths = [e - s + 1 for s, e in _ranges(labels)]
        template = load_prompt(self.prompts["propose"])
        return [
            template.substitute(
                dataset=self.dataset,
                examples=self.examples(seed * 1000 + index, windows, context),
                anomaly_share=f"{labels.mean():.2%}",
                typical_length=int(np.median(lengths)) if lengths else 0,
                objective=OBJECTIVES[self.combine_mode],
            )
            for windows, context in EXAMPLE_SIZES
        ]

    def _ask(self, prompts: list[str], seed: int) -> str | None:
        """The rule in the answer to the first of ``prompts`` (longest first) that fits the
        backend's context with ``max_tokens`` left for the answer; None when none fits or
        the request fails (counted by kind)."""
        messages, too_long = None, None
        for prompt in prompts:
            candidate = [{"role": "system", "content": self.system}, {"role": "user", "content": prompt}]
            try:
                check_budget("rule proposer", self.backend, self.options.max_tokens, candidate)
            except PromptTooLongError as err:
                too_long = err
                continue
            messages = candidate
            break
        if messages is None:
            assert too_long is not None, "no prompt given"
            self._count(too_long.kind, str(too_long))
            log.warning("rule proposer: %s", too_long)
            return None
        try:
            response = self.backend.chat(messages, temperature=self.options.temperature,
                                         max_tokens=self.options.max_tokens, seed=seed)
        except BackendError as err:
            if err.fatal:
                raise
            self._count(err.kind, str(err))
            log.warning("rule proposer: chat request failed (%s): %s", err.kind, err)
            return None
        if response.cut_at_max_tokens:  # still checked: the sandbox says what is wrong with it
            self._count("cut_at_max_tokens", f"answer cut at max_tokens={self.options.max_tokens}")
        return extract_code(response.text)

    def _count(self, kind: str, message: str) -> None:
        self.failures[kind] += 1
        self.first_errors.setdefault(kind, message[:500])

    def report(self) -> dict[str, Any]:
        """Failed or cut requests by kind, with the first error of each (empty: none)."""
        return {"failures": dict(self.failures), "first_errors": self.first_errors} if self.failures else {}

    def _candidate(self, source: str, origin: str, seed: int, parent: str | None = None) -> Candidate:
        self._counter += 1
        return Candidate(name=f"{self.name_prefix}-llm-{self._counter:03d}", source=source, proposer=self.name,
                         parent=parent, origin=origin, seed=seed)

    def examples(self, seed: int, windows: int | None = None, context: int = 10) -> str:
        """A few anomalous training windows (``windows``, default ``example_windows``) as
        "index: value" lines: each anomaly with ``context`` points each side (a long one
        its first and last ``2 * context`` points)."""
        split = self.train
        anomalous = [(a, b) for a, b in split.bounds if split.labels[a:b].any()]
        if not anomalous:
            return "(no anomalous training windows)"
        rng = np.random.default_rng(seed)
        count = min(windows or self.options.example_windows, len(anomalous))
        picks = sorted(rng.choice(len(anomalous), size=count, replace=False))
        blocks = []
        for k, pick in enumerate(picks, start=1):
            a, b = anomalous[pick]
            values, labels = split.values[a:b], split.labels[a:b]
            median = float(np.median(values))
            spread = float(np.median(np.abs(values - median)))
            lines = [f"Example {k}: window of {b - a} points, median {median:.4g}, median absolute deviation {spread:.4g}"]
            for start, end in _ranges(labels)[:3]:
                lo, hi = max(0, start - context), min(b - a, end + context + 1)
                if hi - lo > 6 * context:  # long anomaly: its start and end with context
                    shown = list(range(lo, start + 2 * context)) + list(range(end - 2 * context + 1, hi))
                else:
                    shown = list(range(lo, hi))
                lines.append("  " + ", ".join(f"{i}:{values[i]:.4g}{'*' if labels[i] else ''}" for i in shown))
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    # -- the Proposer protocol ------------------------------------------------------------
    def propose(self, n: int, seed: int) -> list[Candidate]:
        out = []
        for i in range(n):
            source = self._ask(self.propose_prompts(i, seed), seed * 1000 + i)
            if source is not None:
                out.append(self._candidate(source, "proposed", seed))
        return out

    def repair(self, candidate: Candidate, error: str) -> Candidate | None:
        prompt = load_prompt(self.prompts["repair"]).substitute(source=candidate.source.rstrip(), error=error)
        source = self._ask([prompt], candidate.seed or 0)
        return None if source is None else self._candidate(source, "repaired", candidate.seed or 0, candidate.parent)

    def refine(self, candidate: Candidate, regression: str) -> Candidate | None:
        prompt = load_prompt(self.prompts["refine"]).substitute(source=candidate.source.rstrip(), regression=regression)
        source = self._ask([prompt], candidate.seed or 0)
        return None if source is None else self._candidate(source, "refined", candidate.seed or 0, candidate.name)

    def mutate(self, candidate: Candidate, seed: int) -> list[Candidate]:
        operation = self.mutations[seed % len(self.mutations)]
        prompt = load_prompt(self.prompts["mutate"]).substitute(
            dataset=self.dataset, source=candidate.source.rstrip(), operation=operation,
        )
        source = self._ask([prompt], seed)
        return [] if source is None else [self._candidate(source, "mutated", seed, candidate.name)]
