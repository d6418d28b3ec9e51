"""Log messages to templates with Drain (the drain3 library), fitted on one part of a log.

Drain groups messages of the same token count whose constant tokens agree, and replaces the
tokens that vary by ``<*>`` (numbers, and what the masks below catch, become parameters at
once). The parser is fitted on the training lines only; later lines are matched against the
templates it knows and get ``-1`` (unseen) when none fits, as a detector running online would
see them. Template ids are column numbers ``0..K-1`` in order of first appearance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

#: Masks applied before Drain sees a message: (regular expression, name of the parameter).
DEFAULT_MASKS: tuple[tuple[str, str], ...] = (
    (r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?(?![\w.])", "IP"),
    (r"(?<![\w])0x[0-9a-fA-F]+(?![\w])", "HEX"),
)
UNSEEN = -1


@dataclass
class TemplateOptions:
    """Drain's settings (drain3's defaults; Loghub's benchmark uses similar ones)."""

    similarity: float = 0.4  # share of equal tokens for a message to join a template
    depth: int = 4
    max_children: int = 100
    masks: list[list[str]] = field(default_factory=lambda: [list(m) for m in DEFAULT_MASKS])


class TemplateParser:
    """Drain over log messages: ``fit`` on some, ``transform`` any (see the module docstring)."""

    def __init__(self, options: TemplateOptions | None = None):
        from drain3 import TemplateMiner
        from drain3.masking import MaskingInstruction
        from drain3.template_miner_config import TemplateMinerConfig

        self.options = options or TemplateOptions()
        config = TemplateMinerConfig()
        config.drain_sim_th = self.options.similarity
        config.drain_depth = self.options.depth
        config.drain_max_children = self.options.max_children
        config.masking_instructions = [MaskingInstruction(pattern, name) for pattern, name in self.options.masks]
        logging.getLogger("drain3").setLevel(logging.WARNING)
        self._miner = TemplateMiner(config=config)
        self._column: dict[int, int] = {}  # drain cluster id -> template column

    @property
    def n_templates(self) -> int:
        return len(self._column)

    @property
    def templates(self) -> list[str]:
        """Template text of every column (the cluster's current, most general form)."""
        by_id = {c.cluster_id: c.get_template() for c in self._miner.drain.clusters}
        return [by_id[cluster] for cluster, _ in sorted(self._column.items(), key=lambda item: item[1])]

    def _column_of(self, cluster_id: int) -> int:
        if cluster_id not in self._column:
            self._column[cluster_id] = len(self._column)
        return self._column[cluster_id]

    def fit_transform(self, messages: list[str]) -> np.ndarray:
        """Learn templates from ``messages`` and return each message's template column."""
        return np.array([self._column_of(self._miner.add_log_message(m)["cluster_id"]) for m in messages],
                        dtype=np.int64)

    def transform(self, messages: list[str]) -> np.ndarray:
        """Template columns of ``messages`` under the templates learnt so far; -1 where none fits."""
        out = np.full(len(messages), UNSEEN, dtype=np.int64)
        cache: dict[str, int] = {}
        for i, message in enumerate(messages):
            if message not in cache:
                cluster = self._miner.match(message, full_search_strategy="fallback")
                cache[message] = UNSEEN if cluster is None or cluster.cluster_id not in self._column \
                    else self._column[cluster.cluster_id]
            out[i] = cache[message]
        return out


def parse_templates(messages: list[str], fit_end: int | None = None,
                    options: TemplateOptions | None = None) -> tuple[np.ndarray, list[str]]:
    """Template column of every message, fitting Drain on ``messages[:fit_end]`` (all by default).

    Returns ``(columns, templates)``; messages after ``fit_end`` that fit no learnt template get -1.
    """
    parser = TemplateParser(options)
    end = len(messages) if fit_end is None else fit_end
    fitted = parser.fit_transform(messages[:end])
    rest = parser.transform(messages[end:]) if end < len(messages) else np.zeros(0, dtype=np.int64)
    return np.concatenate([fitted, rest]), parser.templates
