"""The offline proposer: rules composed from feature conditions by a search, no LLM.

A rule here is a conjunction of conditions on the features of
:mod:`anomamind.rules.features`, e.g. "the jump z-score at the point is above 4.1 AND the
window's largest value z-score is above 6.0", followed by a dilation (anomalies are ranges).
A condition is *point*-scoped (compares the feature at each point) or *window*-scoped
(compares the feature's maximum over the window: "within the same window").

``propose`` runs a beam search over conditions on the TRAINING split only (thresholds
from the training features' quantiles, scored by macro point F1, optionally after AND/OR
with a base detector); different seeds search different bootstrap samples of the training
series. ``mutate`` removes a condition, scales a threshold, flips a scope or changes the
dilation. Every proposal is rendered as a commented Python rule file; the loop then checks
and validates that file in the sandbox, so the search's fast scores are never reported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from anomamind.rules import features as F
from anomamind.rules.data import SplitData
from anomamind.rules.proposer import Candidate, SearchProposer
from anomamind.rules.scoring import MacroF1, combine


@dataclass(frozen=True)
class Feature:
    """A per-point feature: how the rule computes it, what it means, how to compute it here."""

    name: str
    expression: str  # Python expression over ``values`` inside the rule file
    meaning: str  # the comment line the rule file carries

    def compute(self, window: np.ndarray) -> np.ndarray:
        return eval(self.expression, {"np": np, "F": F}, {"values": window})  # noqa: S307 - our own constant expressions


#: The features the search composes (all from the rule-side feature library).
FEATURES: tuple[Feature, ...] = (
    Feature("value_z", "np.abs(F.robust_zscore(values))",
            "distance of the value from the window's median, in robust standard deviations"),
    Feature("value_high", "F.robust_zscore(values)",
            "how far ABOVE the window's median the value lies (robust z-score)"),
    Feature("value_low", "-F.robust_zscore(values)",
            "how far BELOW the window's median the value lies (robust z-score)"),
    Feature("jump_z", "np.abs(F.diff_zscore(values))",
            "size of the step into the point, in robust standard deviations of the steps"),
    Feature("local_z", "np.abs(F.local_deviation(values, 11))",
            "distance from the running median of the 11 surrounding points (contextual outlier)"),
    Feature("saliency", "F.spectral_residual(values)",
            "spectral-residual saliency: how much the point breaks the window's regular pattern"),
    Feature("noise_ratio", "F.rolling_std_ratio(values, 20)",
            "local noise (std over 20 points) relative to the window's usual step size"),
)
FEATURE_BY_NAME = {f.name: f for f in FEATURES}
SCOPES = ("point", "window")
POINT_QUANTILES = (0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999)
WINDOW_QUANTILES = (0.25, 0.5, 0.75, 0.9, 0.95)
DILATIONS = (0, 1, 2, 3, 5, 10)


@dataclass(frozen=True)
class Condition:
    feature: str
    scope: str  # "point" or "window"
    threshold: float


@dataclass(frozen=True)
class RuleSpec:
    """A conjunction of conditions plus a dilation radius: the offline proposer's rule."""

    conditions: tuple[Condition, ...]
    dilation: int = 0

    def key(self) -> tuple:
        return (tuple(sorted((c.feature, c.scope, c.threshold) for c in self.conditions)), self.dilation)

    def thresholds(self) -> dict[str, float]:
        return {f"{c.feature}@{c.scope}": c.threshold for c in self.conditions}


def _round(x: float) -> float:
    """Three significant digits: thresholds a reader can take in at a glance."""
    return float(f"{x:.3g}")


def render_rule(spec: RuleSpec, name: str, note: str = "") -> str:
    """The rule file of ``spec``: imports, a docstring, one commented block per condition."""
    lines = [
        f'"""Rule {name}: flags a point when ALL conditions below hold{" (" + note + ")" if note else ""}."""',
        "",
        "import numpy as np",
        "",
        "from anomamind.rules import features as F",
        "",
        "",
        "def detect(values: np.ndarray) -> np.ndarray:",
        '    """0/1 per point of one window of the series."""',
        "    flagged = np.ones(values.size, dtype=bool)",
    ]
    computed: set[str] = set()
    for c in spec.conditions:
        feature = FEATURE_BY_NAME[c.feature]
        lines.append("")
        if c.feature not in computed:
            lines.append(f"    # {c.feature}: {feature.meaning}.")
            lines.append(f"    {c.feature} = {feature.expression}")
            computed.add(c.feature)
        if c.scope == "point":
            lines.append(f"    # Condition: {c.feature} above {c.threshold:g} at the point itself.")
            lines.append(f"    flagged &= {c.feature} > {c.threshold!r}")
        else:
            lines.append(f"    # Condition: somewhere in the same window {c.feature} exceeds {c.threshold:g}")
            lines.append("    # (the whole window must look disturbed before any point is flagged).")
            lines.append(f"    flagged &= bool(np.max({c.feature}) > {c.threshold!r})")
    if spec.dilation:
        lines.append("")
        lines.append(f"    # Anomalies are ranges: also flag the {spec.dilation} point(s) on each side of a flagged point.")
        lines.append(f"    flagged = F.dilate(flagged, {spec.dilation})")
    lines.append("    return flagged.astype(np.int8)")
    return "\n".join(lines) + "\n"


class FeatureTable:
    """Every feature of every training point (and its window maximum), computed once.

    Computed window by window exactly as the rule files compute them, so the search
    scores what the rules will flag (up to dilation across window edges).
    """

    def __init__(self, split: SplitData):
        self.split = split
        n = split.n_points
        self.point = {f.name: np.zeros(n) for f in FEATURES}
        self.window_max = {f.name: np.zeros(n) for f in FEATURES}
        for a, b in split.bounds:
            window = split.values[a:b]
            for f in FEATURES:
                values = f.compute(window)
                self.point[f.name][a:b] = values
                self.window_max[f.name][a:b] = values.max() if values.size else 0.0
        self.window_starts = np.array([a for a, _ in split.bounds])

    def mask(self, c: Condition) -> np.ndarray:
        source = self.point if c.scope == "point" else self.window_max
        return source[c.feature] > c.threshold

    def thresholds(self, feature: str, scope: str, rows: np.ndarray) -> list[float]:
        if scope == "point":
            data = self.point[feature][rows]
            qs = POINT_QUANTILES
        else:
            data = self.window_max[feature][self.window_starts]
            qs = WINDOW_QUANTILES
        levels = sorted({_round(v) for v in np.quantile(data, qs)} - {0.0}) if data.size else []
        return levels


class OfflineProposer(SearchProposer):
    """Beam search over feature conditions on the training split (see module docstring)."""

    name = "offline"

    def __init__(
        self,
        train: SplitData,
        *,
        combine_mode: str | None = None,
        beam_width: int = 6,
        max_conditions: int = 3,
        bootstrap: float = 0.8,
        name_prefix: str = "rule",
    ):
        self.train = train
        self.table = FeatureTable(train)
        self.combine_mode = combine_mode
        self.beam_width = beam_width
        self.max_conditions = max_conditions
        self.bootstrap = bootstrap
        self.name_prefix = name_prefix
        self._counter = 0

    # -- scoring ------------------------------------------------------------------------
    def _scorer(self, seed: int) -> tuple[MacroF1, np.ndarray]:
        """Macro F1 over a bootstrap sample of the training series (seed 0: all of them)."""
        split = self.train
        n_series = len(split.series)
        chosen = np.arange(n_series)
        if seed and n_series > 2:
            rng = np.random.default_rng(seed)
            size = max(2, int(round(self.bootstrap * n_series)))
            chosen = np.sort(rng.choice(n_series, size=size, replace=False))
        ends = np.append(split.starts[1:], split.n_points)
        rows = np.concatenate([np.arange(split.starts[i], ends[i]) for i in chosen])
        lengths = ends[chosen] - split.starts[chosen]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return MacroF1(split.labels[rows], starts), rows

    def _flags(self, spec: RuleSpec, rows: np.ndarray | None = None) -> np.ndarray:
        flags = np.ones(self.train.n_points, dtype=bool)
        for c in spec.conditions:
            flags &= self.table.mask(c)
        if spec.dilation:
            flags = ndimage.binary_dilation(flags, structure=np.ones(2 * spec.dilation + 1, dtype=bool))
        flags = combine(self.train.base, flags, self.combine_mode)
        return flags if rows is None else flags[rows]

    def score(self, spec: RuleSpec, seed: int = 0) -> float:
        """Macro point F1 of ``spec`` on the training split (or a bootstrap of it)."""
        scorer, rows = self._scorer(seed)
        return scorer(self._flags(spec, rows))

    # -- search ---------------------------------------------------------------------------
    def _search(self, seed: int) -> list[tuple[float, RuleSpec]]:
        scorer, rows = self._scorer(seed)
        grids = {
            (f.name, scope): self.table.thresholds(f.name, scope, rows) for f in FEATURES for scope in SCOPES
        }
        scored: dict[tuple, tuple[float, RuleSpec]] = {}

        def consider(spec: RuleSpec) -> None:
            if spec.key() not in scored:
                scored[spec.key()] = (scorer(self._flags(spec, rows)), spec)

        for f in FEATURES:  # level 1: one point condition
            for t in grids[(f.name, "point")]:
                consider(RuleSpec((Condition(f.name, "point", t),)))
        beam = sorted(scored.values(), key=lambda x: -x[0])[: self.beam_width]
        for _ in range(self.max_conditions - 1):  # add one condition at a time
            for _, spec in beam:
                used = {(c.feature, c.scope) for c in spec.conditions}
                for (feature, scope), levels in grids.items():
                    if (feature, scope) in used:
                        continue
                    for t in levels:
                        consider(RuleSpec(spec.conditions + (Condition(feature, scope, t),)))
            beam = sorted(scored.values(), key=lambda x: -x[0])[: self.beam_width]
        finished = []
        for _, spec in beam:  # the best dilation for each rule of the final beam
            for d in DILATIONS:
                consider(replace(spec, dilation=d))
            finished.append(max((scored[replace(spec, dilation=d).key()] for d in DILATIONS), key=lambda x: x[0]))
        return sorted(finished, key=lambda x: -x[0])

    def _candidate(self, spec: RuleSpec, origin: str, seed: int | None, parent: str | None = None) -> Candidate:
        self._counter += 1
        name = f"{self.name_prefix}-{self._counter:03d}"
        note = f"{origin} by the offline search" + (f" from {parent}" if parent else "")
        return Candidate(
            name=name,
            source=render_rule(spec, name, note),
            proposer=self.name,
            parent=parent,
            origin=origin,
            seed=seed,
            thresholds=spec.thresholds() | {"dilation": spec.dilation},
            spec=spec,
        )

    def propose(self, n: int, seed: int) -> list[Candidate]:
        seen: set[tuple] = set()
        out = []
        for _, spec in self._search(seed):
            if spec.key() not in seen and len(out) < n:
                seen.add(spec.key())
                out.append(self._candidate(spec, "proposed", seed))
        return out

    def mutate(self, candidate: Candidate, seed: int) -> list[Candidate]:
        spec: RuleSpec | None = candidate.spec
        if spec is None:
            return []
        rng = np.random.default_rng(seed)
        variants: list[RuleSpec] = []
        conds = spec.conditions
        if len(conds) > 1:  # remove a condition
            drop = int(rng.integers(len(conds)))
            variants.append(replace(spec, conditions=conds[:drop] + conds[drop + 1:]))
        i = int(rng.integers(len(conds)))  # change a threshold
        for factor in (0.8, 1.25):
            changed = replace(conds[i], threshold=_round(conds[i].threshold * factor))
            variants.append(replace(spec, conditions=conds[:i] + (changed,) + conds[i + 1:]))
        j = int(rng.integers(len(conds)))  # flip a condition's scope
        flipped = replace(conds[j], scope="window" if conds[j].scope == "point" else "point")
        if all((c.feature, c.scope) != (flipped.feature, flipped.scope) for c in conds):
            variants.append(replace(spec, conditions=conds[:j] + (flipped,) + conds[j + 1:]))
        variants.append(replace(spec, dilation=int(rng.choice([d for d in DILATIONS if d != spec.dilation]))))
        return [
            self._candidate(v, "mutated", seed, parent=candidate.name)
            for v in variants
            if any(c.scope == "point" for c in v.conditions)
        ]
