"""Log rules on synthetic logs: the CodeAD sampler, the offline search and its rule files, the
sandboxed log-rule detector with AND/OR, the baselines, and the loop end to end."""

from __future__ import annotations

import numpy as np
import pytest

from anomamind.envs.log_synthetic import generate_log
from anomamind.envs.log_windows import LogWindowSpec
from anomamind.eval.baselines.logs import InvariantsMiningDetector, KeywordDetector, PCADetector
from anomamind.rules.log_data import LogSplitSpec, split_log
from anomamind.rules.log_detector import LogRuleSetDetector, create_log_detector
from anomamind.rules.log_proposer_offline import LogCondition, LogOfflineProposer, LogRuleSpec, render_log_rule
from anomamind.rules.log_sampler import contrastive_sample, window_vectors
from anomamind.rules.log_train import LogRuleTrainConfig, train_on_parts
from anomamind.rules.rule import Rule, RuleSet
from anomamind.rules.sandbox import RuleRejected, SandboxLimits
from anomamind.types import DataError

LIMITS = SandboxLimits(time_limit_s=10.0, memory_limit_mb=512, seconds_per_million_points=120.0)
SESSIONS = LogWindowSpec(by="session")


@pytest.fixture(scope="module")
def parts():
    """A synthetic log (all five anomaly kinds) split in time order into session windows."""
    return split_log(generate_log(6000, seed=5, anomaly_rate=0.05), SESSIONS)


def run_in_process(source: str, windows: list[list[str]]) -> np.ndarray:
    """The rule file's own verdicts, without the sandbox (to compare with the search)."""
    namespace: dict = {}
    exec(compile(source, "<rule>", "exec"), namespace)  # noqa: S102 - our own generated rule, in a test
    return np.array([bool(namespace["detect"](lines)) for lines in windows])


def test_split_is_time_ordered_and_counts_alert_windows(parts):
    train, validation, test = parts["train"], parts["validation"], parts["test"]
    assert train.start == 0 and train.end == validation.start and validation.end == test.start
    assert test.end == len(train.data) and abs(train.n_lines - 0.6 * len(train.data)) <= 1
    for part in parts.values():
        assert all(part.start <= w.min() and w.max() < part.end for w in part.windows)
        assert part.summary()["alert_windows"] == int(part.labels.sum()) > 0
    # templates come from the training lines only: later lines may be unseen (-1), training lines never
    assert train.columns[: train.end].min() >= 0
    counts = train.counts()
    assert counts.shape == (len(train.windows), train.n_templates + 1) and counts[:, -1].sum() == 0
    with pytest.raises(DataError, match="sum to at most 1"):
        LogSplitSpec(train=0.8, validation=0.3)


def test_contrastive_sample_pairs_anchors_with_their_nearest_normal_windows(parts):
    train = parts["train"]
    sample = contrastive_sample(train)
    labels = train.labels.astype(bool)
    vectors = window_vectors(train)
    assert sample.pairs and all(labels[anchor] for anchor, _ in sample.pairs)
    claimed: set[int] = set()
    for anchor, neighbours in sample.pairs:
        claimed.add(anchor)
        assert len(neighbours) == 1 and not labels[neighbours[0]]
        free = [w for w in np.flatnonzero(~labels) if w not in claimed]
        similarity = vectors[free] @ vectors[anchor]
        assert vectors[neighbours[0]] @ vectors[anchor] == pytest.approx(similarity.max())
        claimed.update(neighbours)
    # anchors are spread over clusters before any cluster gives a second one
    anchor_clusters = [sample.clusters[a] for a, _ in sample.pairs]
    n_anomalous_clusters = len(set(sample.clusters[labels]))
    assert len(set(anchor_clusters[:n_anomalous_clusters])) == min(n_anomalous_clusters, len(anchor_clusters))
    kinds = {train.data.categories[train.windows[a][0]] for a, _ in sample.pairs}
    assert len(kinds) >= 3  # several anomaly kinds are shown, not one repeated
    assert sample.labels.tolist() == labels[sample.windows].astype(int).tolist()


def test_offline_search_finds_an_injected_error_template():
    only_errors = split_log(generate_log(5000, seed=2, anomaly_rate=0.04, kinds=("ERROR",)), SESSIONS)
    proposer = LogOfflineProposer(only_errors["train"], name_prefix="err")
    best = proposer.propose(2, seed=0)[0]
    patterns = [proposer.search.patterns[c.a].meaning for c in best.spec.conditions if c.a >= 0]
    assert best.spec.conditions[0].kind in ("has", "unseen")
    assert best.spec.conditions[0].kind == "unseen" or "connection refused" in patterns[0]
    validation = only_errors["validation"]
    flags = run_in_process(best.source, validation.texts())
    assert validation.scores(flags)["f1"] == 1.0
    assert "# Condition:" in best.source and "def detect(lines: list[str]) -> bool:" in best.source


def test_every_condition_kind_renders_to_a_rule_that_flags_what_the_search_scored(parts):
    train = parts["train"]
    search = LogOfflineProposer(train).search
    meaning = [p.meaning for p in search.patterns]
    opened = next(i for i, m in enumerate(meaning) if "opened for user" in m)
    closed = next(i for i, m in enumerate(meaning) if "closed after" in m)
    responded = next(i for i, m in enumerate(meaning) if "responded" in m)
    requested = next(i for i, m in enumerate(meaning) if m.endswith('from <IP>"') and "token" not in m)
    specs = [
        LogRuleSpec((LogCondition("has", a=opened), LogCondition("lacks", a=closed))),
        LogRuleSpec((LogCondition("at_least", a=responded, k=2),)),
        LogRuleSpec((LogCondition("missing", a=opened, b=closed),)),
        LogRuleSpec((LogCondition("out_of_order", a=requested, b=responded),)),
        LogRuleSpec((LogCondition("unseen"),)),
        *[LogRuleSpec((c,)) for c in search.candidates[:20]],
    ]
    texts = train.texts()
    for spec in specs:
        source = render_log_rule(spec, search, "probe")
        assert np.array_equal(run_in_process(source, texts), search.flags(spec)), source
    order = LogRuleSpec((LogCondition("out_of_order", a=requested, b=responded),))
    flagged = {train.data.categories[train.windows[w][0]] for w in np.flatnonzero(search.flags(order))}
    assert flagged == {"ORDER"}  # the response before the request: exactly the ORDER sessions


def test_log_rule_set_runs_in_the_sandbox_and_combines_by_and_or(parts):
    test = parts["test"]
    keyword = KeywordDetector().predict_lines(test.texts())[0].astype(bool)
    rule = ('import re\n\nLEVEL = re.compile(r" (ERROR|WARN) ")\n\n\ndef detect(lines):\n'
            "    # an ERROR or WARN line: something went wrong in this window\n"
            "    return any(LEVEL.search(line) for line in lines)\n")
    own = run_in_process(rule, test.texts())
    for mode, expected in ((None, own), ("and", own & keyword), ("or", own | keyword)):
        combine_with = {"detector": "keyword", "mode": mode} if mode else None
        rule_set = RuleSet([Rule("level", rule)], window_length=0, modality="logs", combine_with=combine_with,
                           window={"by": "session"})
        detector = LogRuleSetDetector(rule_set, limits=LIMITS)
        try:
            detector.fit(parts["train"])
            prediction = detector.detect(test)
        finally:
            detector.close()
        assert prediction.flags.astype(bool).tolist() == expected.tolist(), mode
    assert own.any() and not np.array_equal(own & keyword, own | keyword)


def test_a_failing_or_forbidden_log_rule_is_reported_not_dropped(parts):
    broken = "def detect(lines):\n    # divides by zero on purpose\n    return len(lines) / 0 > 1\n"
    fine = "def detect(lines):\n    # long sessions\n    return len(lines) > 12\n"
    rule_set = RuleSet([Rule("broken", broken), Rule("fine", fine)], window_length=0, modality="logs",
                       window={"by": "session"})
    detector = LogRuleSetDetector(rule_set, limits=LIMITS)
    try:
        prediction = detector.detect(parts["validation"])
    finally:
        detector.close()
    assert prediction.info["failed_rules"] == 1 and "ZeroDivisionError" in prediction.info["rule_errors"][0]
    assert prediction.flags.tolist() == [int(len(w) > 12) for w in parts["validation"].windows]
    evil = RuleSet([Rule("evil", "import os\n\ndef detect(lines):\n    return bool(os.listdir('/'))\n")],
                   window_length=0, modality="logs")
    with pytest.raises(RuleRejected, match="rule 'evil'.*import of 'os' is not allowed"):
        LogRuleSetDetector(evil, limits=LIMITS)
    with pytest.raises(DataError, match="not log rules"):
        LogRuleSetDetector(RuleSet([Rule("s", fine)]), limits=LIMITS)


def test_baselines_on_count_matrices_and_lines(parts):
    train, test = parts["train"], parts["test"]
    normal = train.counts()[train.labels == 0]
    invariants = InvariantsMiningDetector().fit(normal)
    assert invariants.invariants  # e.g. one "closed" per "opened" in a session
    new_template = test.counts()[:, -1] > 0
    pca = PCADetector().fit(train.counts())
    flags, spe = pca.predict(test.counts())
    assert flags[new_template].all() and spe.shape == (len(test.windows),)
    for name in ("pca", "iforest", "invariants", "keyword"):
        detector = create_log_detector(name)
        detector.fit(train)
        prediction = detector.detect(test)
        assert prediction.flags.shape == prediction.scores.shape == (len(test.windows),)
        assert 0 <= test.scores(prediction.flags)["f1"] <= 1
    flags, hits = KeywordDetector().predict_lines([["all good"], ["disk FAILED", "fatal: x"], ["errorless"]])
    assert flags.tolist() == [0, 1, 0] and hits.tolist() == [0, 2, 0]
    with pytest.raises(DataError, match="unknown log detector"):
        create_log_detector("lstm")


def test_loop_trains_rules_alone_and_to_add_to_a_detector():
    data = generate_log(6000, seed=7, anomaly_rate=0.05)
    config = LogRuleTrainConfig(window=SESSIONS, max_rounds=3, candidates_per_round=4, top_k=3, sandbox=LIMITS)
    result, sample = train_on_parts(split_log(data, SESSIONS), SESSIONS, config, "SYN")
    assert result.validation_f1 > 0.6 and result.rule_set.modality == "logs"
    assert result.rule_set.window == {"by": "session", "size": 20, "stride": None}
    assert all("def detect(lines" in rule.source for rule in result.rule_set.rules)
    assert len(sample.windows) > len(sample.pairs)
    # OR-training with the keyword rule (which sees only the ERROR sessions' error lines) learns
    # rules for what it misses, so the combination beats the keyword rule alone on validation
    parts = split_log(data, SESSIONS)
    combined = LogRuleTrainConfig(window=SESSIONS, max_rounds=2, candidates_per_round=4, sandbox=LIMITS,
                                  combine_with="keyword", combine_mode="or")
    result, _ = train_on_parts(parts, SESSIONS, combined, "SYN")
    keyword_alone = parts["validation"].scores(parts["validation"].base)["f1"]
    assert result.rule_set.combine_with == {"detector": "keyword", "mode": "or"}
    assert result.validation_f1 > keyword_alone + 0.2
