"""Classical log anomaly detectors on window x template count matrices (and one on raw lines).

- :class:`PCADetector`: Xu et al. (SOSP 2009): TF-IDF weighted, centred counts; the
  residual of the principal subspace that keeps 95% of the variance (squared prediction
  error, SPE) is compared with the Q-statistic threshold of Jackson & Mudholkar at
  ``alpha``; unsupervised.
- :class:`IsolationForestDetector`: scikit-learn's Isolation Forest on the raw counts,
  with its own ``auto`` threshold; unsupervised.
- :class:`InvariantsMiningDetector`: Lou et al. (USENIX ATC 2010): small integer linear
  relations between template counts (``sum_j a_j x_j = 0``) that hold on ``support`` of the
  training windows; a window that breaks one is anomalous. Searched over combinations of up
  to three templates, as in loglizer.
- :class:`KeywordDetector`: a window with a line containing an error word (error, fail,
  fatal, exception, ...) is anomalous.

Matrices and lines come from the caller; nothing here knows about log files (see
:mod:`anomamind.rules.log_detector` for the adapters).
"""

from __future__ import annotations

import itertools
import re

import numpy as np

#: Words of the keyword rule (whole words, any case).
ERROR_WORDS = ("error", "errors", "fail", "fails", "failed", "failure", "fatal", "exception", "panic", "critical")


class PCADetector:
    """PCA on TF-IDF weighted template counts, SPE against the Q-statistic (Xu et al.)."""

    def __init__(self, variance: float = 0.95, alpha: float = 0.001):
        self.variance = variance
        self.alpha = alpha

    def fit(self, counts: np.ndarray) -> "PCADetector":
        from scipy.stats import norm
        from sklearn.decomposition import PCA

        counts = np.asarray(counts, dtype=np.float64)
        n = counts.shape[0]
        document_frequency = (counts > 0).sum(axis=0)
        self.idf = np.log(n / np.maximum(document_frequency, 1))
        weighted = counts * self.idf
        self.mean = weighted.mean(axis=0)
        centred = weighted - self.mean
        pca = PCA().fit(centred) if n > 1 else None
        if pca is None or not np.any(pca.explained_variance_ > 0):
            self.residual = np.eye(counts.shape[1])
            self.threshold = 0.0
            return self
        ratios = np.cumsum(pca.explained_variance_ratio_)
        k = int(np.searchsorted(ratios, self.variance) + 1)
        components = pca.components_[:k]
        self.residual = np.eye(counts.shape[1]) - components.T @ components
        rest = pca.explained_variance_[k:]
        phi = [float(np.sum(rest ** i)) for i in (1, 2, 3)]
        if phi[0] <= 0 or phi[1] <= 0:
            self.threshold = 0.0  # no residual variance in training: any residual is new
            return self
        h0 = 1.0 - 2.0 * phi[0] * phi[2] / (3.0 * phi[1] ** 2)
        c_alpha = norm.ppf(1 - self.alpha)
        if h0 <= 0:  # the approximation does not apply; fall back to the largest training SPE
            self.threshold = float(self.spe(counts).max())
            return self
        self.threshold = float(phi[0] * (c_alpha * np.sqrt(2 * phi[1] * h0 ** 2) / phi[0] + 1
                                         + phi[1] * h0 * (h0 - 1) / phi[0] ** 2) ** (1.0 / h0))
        return self

    def spe(self, counts: np.ndarray) -> np.ndarray:
        centred = np.asarray(counts, dtype=np.float64) * self.idf - self.mean
        projected = centred @ self.residual.T
        return np.sum(projected ** 2, axis=1)

    def predict(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(0/1 per window, SPE per window)."""
        scores = self.spe(counts)
        return (scores > self.threshold + 1e-9).astype(np.int8), scores


class IsolationForestDetector:
    """Isolation Forest on raw template counts (scikit-learn, ``contamination="auto"``)."""

    def __init__(self, n_estimators: int = 100, contamination: str | float = "auto", seed: int = 0):
        self.n_estimators = n_estimators
        self.contamination = contamination
        self.seed = seed

    def fit(self, counts: np.ndarray) -> "IsolationForestDetector":
        from sklearn.ensemble import IsolationForest

        self.model = IsolationForest(n_estimators=self.n_estimators, contamination=self.contamination,
                                     random_state=self.seed).fit(np.asarray(counts, dtype=np.float64))
        return self

    def predict(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        counts = np.asarray(counts, dtype=np.float64)
        flags = (self.model.predict(counts) == -1).astype(np.int8)
        return flags, -self.model.score_samples(counts)


class InvariantsMiningDetector:
    """Integer count invariants that hold on the training windows (Lou et al., as in loglizer)."""

    def __init__(self, epsilon: float = 0.5, support: float = 0.98, max_size: int = 3,
                 max_scale: int = 3, max_invariants: int = 200, max_combinations: int = 200_000):
        self.epsilon = epsilon
        self.support = support
        self.max_size = max_size
        self.max_scale = max_scale
        self.max_invariants = max_invariants
        self.max_combinations = max_combinations  # a cap on the search (wide count matrices)

    def fit(self, counts: np.ndarray) -> "InvariantsMiningDetector":
        counts = np.asarray(counts, dtype=np.float64)
        n_columns = counts.shape[1]
        rank = np.linalg.matrix_rank(counts) if counts.size else 0
        wanted = min(self.max_invariants, max(n_columns - rank, 0))  # the invariant space's dimension
        self.invariants: list[tuple[tuple[int, ...], np.ndarray]] = []
        covered: set[int] = set()
        tried = 0
        for size in range(1, self.max_size + 1):
            for columns in itertools.combinations(range(n_columns), size):
                tried += 1
                if len(self.invariants) >= wanted or tried > self.max_combinations:
                    return self
                if size > 1 and set(columns) <= covered:
                    continue  # implied by smaller invariants already found
                vector = self._invariant(counts[:, columns])
                if vector is not None:
                    self.invariants.append((columns, vector))
                    covered.update(columns)
        return self

    def _invariant(self, block: np.ndarray) -> np.ndarray | None:
        """A small-integer vector ``a`` with ``|block @ a| < epsilon`` on ``support`` of the rows."""
        _, _, vt = np.linalg.svd(block, full_matrices=True)
        vector = vt[-1]
        nonzero = np.abs(vector) > 1e-6
        if not nonzero.all():  # an invariant of fewer templates: found at a smaller size
            return None
        scaled = vector / np.min(np.abs(vector))
        integers = np.round(scaled)
        if np.max(np.abs(integers)) > self.max_scale or np.max(np.abs(scaled - integers)) > 0.1:
            return None
        holds = np.abs(block @ integers) < self.epsilon
        return integers if holds.mean() >= self.support else None

    def predict(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(0/1 per window, number of broken invariants per window)."""
        counts = np.asarray(counts, dtype=np.float64)
        broken = np.zeros(counts.shape[0])
        for columns, vector in self.invariants:
            broken += np.abs(counts[:, columns] @ vector) >= self.epsilon
        return (broken > 0).astype(np.int8), broken


class KeywordDetector:
    """Flags a window when a line contains an error word (``ERROR_WORDS``, whole word, any case)."""

    def __init__(self, words: tuple[str, ...] = ERROR_WORDS):
        self.pattern = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)

    def predict_lines(self, windows: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(0/1 per window, number of keyword lines per window)."""
        hits = np.array([sum(1 for line in lines if self.pattern.search(line)) for lines in windows], dtype=np.float64)
        return (hits > 0).astype(np.int8), hits
