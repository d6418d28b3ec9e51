"""What the training loop needs from a rule proposer, and what a proposal is.

Two proposers implement :class:`Proposer`: the offline one
(:mod:`anomamind.rules.proposer_offline`, a search over feature conditions, no LLM) and
the LLM one (:mod:`anomamind.rules.proposer_llm`, through a chat backend). The loop
(:mod:`anomamind.rules.loop`) calls them in Argos's order: propose, repair after a failed
check, refine after a validation regression, mutate to leave a local optimum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Candidate:
    """A proposed rule: source code plus where it came from.

    ``spec`` is the proposer's own structured form (the offline proposer's conditions) so
    it can mutate the rule; ``thresholds`` are recorded in the manifest for provenance.
    """

    name: str
    source: str
    proposer: str
    parent: str | None = None
    origin: str = "proposed"  # proposed | repaired | refined | mutated
    seed: int | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    spec: Any = None


class Proposer(Protocol):
    """The proposer side of the training loop."""

    name: str

    def propose(self, n: int, seed: int) -> list[Candidate]:
        """Up to ``n`` new rules (different seeds give different proposals)."""
        ...

    def repair(self, candidate: Candidate, error: str) -> Candidate | None:
        """A fixed version of a rule that failed its check (``error`` says why), or None."""
        ...

    def refine(self, candidate: Candidate, regression: str) -> Candidate | None:
        """A better version of a rule that scored below its parent (``regression`` shows
        the windows that got worse), or None."""
        ...

    def mutate(self, candidate: Candidate, seed: int) -> list[Candidate]:
        """Variants of a rule: a condition removed, a threshold changed, a free rewrite."""
        ...


class SearchProposer:
    """Base of the offline (search) proposers: the code they generate passes the check, so
    there is nothing to repair, and a search has no use for textual feedback (mutation
    explores instead)."""

    def repair(self, candidate: Candidate, error: str) -> Candidate | None:
        return None

    def refine(self, candidate: Candidate, regression: str) -> Candidate | None:
        return None
