"""CodeAD's sampling: clusters of log windows, and anomalous anchors with their nearest normal windows.

Training windows are compared by their template-count vectors (log-scaled, unit length, so
distances are cosine distances) and grouped by hierarchical agglomerative clustering
(average linkage, scipy). Anchors are anomalous windows chosen cluster by cluster (the one
nearest its cluster's anomalous centre first, so every kind of anomaly is represented before
any is repeated); each anchor is paired with the normal windows nearest to it, which show a
proposer what separates the anomaly from the normal behaviour most like it. Medoids of the
largest normal-only clusters are added so the sample also covers ordinary operation. The
sample is what an LLM proposer is shown and what every proposed rule is checked on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from anomamind.rules.log_data import LogPart

MAX_CLUSTERED = 3000  # windows beyond this are clustered on a sample (linkage needs n^2 memory)


@dataclass
class SamplerOptions:
    clusters: int = 0  # number of clusters; 0 = about the square root of the number of windows
    anchors: int = 8  # anomalous anchor windows in the sample
    neighbours: int = 1  # nearest normal windows per anchor
    normals: int = 3  # medoids of normal-only clusters
    max_lines_shown: int = 14  # lines of one window shown in a prompt


@dataclass
class ContrastiveSample:
    """Training windows to show and check rules on: anchors, their neighbours, normal medoids."""

    windows: list[int]  # training window indices, in the order shown
    labels: np.ndarray  # 0/1 per sample window
    pairs: list[tuple[int, list[int]]]  # (anchor, its nearest normal windows)
    clusters: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # per training window


def window_vectors(part: LogPart) -> np.ndarray:
    """Log-scaled, unit-length template-count vector of every window of ``part``."""
    vectors = np.log1p(part.counts())
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def cluster_windows(vectors: np.ndarray, n_clusters: int = 0, seed: int = 0) -> np.ndarray:
    """Cluster id (1..k) of every window by average-linkage clustering on cosine distance."""
    n = len(vectors)
    if n < 2:
        return np.ones(n, dtype=np.int64)
    k = n_clusters or int(np.clip(round(np.sqrt(n)), 2, 50))
    rows = np.arange(n)
    if n > MAX_CLUSTERED:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=MAX_CLUSTERED, replace=False))
    tree = linkage(vectors[rows], method="average", metric="cosine")
    sampled = fcluster(tree, t=min(k, len(rows)), criterion="maxclust")
    if len(rows) == n:
        return sampled.astype(np.int64)
    # windows outside the sample join the cluster of their nearest sampled window
    nearest = np.argmax(vectors @ vectors[rows].T, axis=1)
    return sampled[nearest].astype(np.int64)


def contrastive_sample(part: LogPart, options: SamplerOptions | None = None, seed: int = 0) -> ContrastiveSample:
    """Anchors, their nearest normal windows and normal medoids (see the module docstring)."""
    options = options or SamplerOptions()
    vectors = window_vectors(part)
    clusters = cluster_windows(vectors, options.clusters, seed)
    labels = part.labels.astype(bool)
    anchors = _anchors(vectors, clusters, labels, options.anchors)
    normal = np.flatnonzero(~labels)
    used: set[int] = set(anchors)
    pairs = []
    for anchor in anchors:
        order = normal[np.argsort(-(vectors[normal] @ vectors[anchor]), kind="stable")]
        chosen = [int(w) for w in order if int(w) not in used][: options.neighbours]
        used.update(chosen)
        pairs.append((anchor, chosen))
    medoids = [w for w in _normal_medoids(vectors, clusters, labels, options.normals) if w not in used]
    windows = [w for anchor, near in pairs for w in (anchor, *near)] + medoids
    return ContrastiveSample(windows=windows, labels=part.labels[windows].astype(np.int8), pairs=pairs,
                             clusters=clusters)


def _anchors(vectors: np.ndarray, clusters: np.ndarray, labels: np.ndarray, count: int) -> list[int]:
    """Anomalous windows, cluster by cluster, each cluster's most central ones first."""
    queues = []
    for c in np.unique(clusters[labels]):
        members = np.flatnonzero(labels & (clusters == c))
        centre = vectors[members].mean(axis=0)
        queues.append(list(members[np.argsort(-(vectors[members] @ centre), kind="stable")]))
    queues.sort(key=len, reverse=True)  # the biggest anomaly groups first
    out: list[int] = []
    while len(out) < count and any(queues):
        for queue in queues:
            if queue and len(out) < count:
                out.append(int(queue.pop(0)))
    return out


def _normal_medoids(vectors: np.ndarray, clusters: np.ndarray, labels: np.ndarray, count: int) -> list[int]:
    """The most central window of each of the largest clusters without anomalies."""
    normal_only = [c for c in np.unique(clusters) if not labels[clusters == c].any()]
    normal_only.sort(key=lambda c: -int((clusters == c).sum()))
    out = []
    for c in normal_only[:count]:
        members = np.flatnonzero(clusters == c)
        centre = vectors[members].mean(axis=0)
        out.append(int(members[np.argmax(vectors[members] @ centre)]))
    return out


def describe_window(part: LogPart, window: int, max_lines: int = 14) -> str:
    """The window's lines for a prompt: anomalous lines marked ``*``, long windows shortened
    to the anomalous lines with a line of context each (or the first lines when none)."""
    rows = part.windows[window]
    anomalous = part.data.labels[rows].astype(bool)
    if len(rows) <= max_lines:
        keep = np.arange(len(rows))
    elif anomalous.any():
        marks = np.flatnonzero(anomalous)
        keep = np.unique(np.clip(np.concatenate([marks - 1, marks, marks + 1]), 0, len(rows) - 1))[:max_lines]
    else:
        keep = np.arange(max_lines)
    out, previous = [], -1
    for i in keep:
        if i > previous + 1:
            out.append(f"    ... ({i - previous - 1} lines)")
        out.append(f"  {'*' if anomalous[i] else ' '} {part.data.lines[rows[i]]}")
        previous = i
    if previous < len(rows) - 1:
        out.append(f"    ... ({len(rows) - 1 - previous} lines)")
    return "\n".join(out)
