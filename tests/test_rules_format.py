"""Rule files and rule sets: saving, loading, errors, windows, scores, rendering."""

import json

import numpy as np
import pytest

from anomamind.eval.point_metrics import point_prf
from anomamind.rules.data import SplitSpec, build_split, split_series
from anomamind.rules.policy import static_problems
from anomamind.rules.proposer_offline import Condition, RuleSpec, render_rule
from anomamind.rules.rule import MANIFEST, Rule, RuleSet, load_rule_set, rule_windows, save_rule_set
from anomamind.rules.scoring import MacroF1, combine
from anomamind.types import DataError, Series

SPEC = RuleSpec((Condition("jump_z", "point", 4.5), Condition("value_z", "window", 6.0)), dilation=2)


def test_rendered_rule_explains_every_condition_and_passes_the_static_check():
    source = render_rule(SPEC, "demo-1", "proposed by the offline search")
    assert static_problems(source) == []
    rule = Rule("demo-1", source)
    comments = " ".join(rule.comments())
    assert "jump_z above 4.5 at the point itself" in comments
    assert "somewhere in the same window value_z exceeds 6" in comments
    assert "flag the 2 point(s) on each side" in comments
    assert "flagged &= jump_z > 4.5" in source


def test_rule_set_round_trip(tmp_path):
    source = render_rule(SPEC, "demo-1")
    rule_set = RuleSet(
        [Rule("demo-1", source, {"validation_f1": 0.5, "parent": None, "thresholds": SPEC.thresholds(), "seed": 3})],
        window_length=256,
        dataset="DEMO",
        combine_with={"detector": "sr", "mode": "and"},
        info={"test": {"point_f1": 0.4}},
    )
    save_rule_set(rule_set, tmp_path / "set")
    loaded = load_rule_set(tmp_path / "set")
    assert loaded.rules[0].source == source
    assert loaded.rules[0].meta["thresholds"] == {"jump_z@point": 4.5, "value_z@window": 6.0}
    assert (loaded.window_length, loaded.dataset, loaded.combine_with) == (256, "DEMO", {"detector": "sr", "mode": "and"})
    assert loaded.info["test"] == {"point_f1": 0.4}
    single = load_rule_set(tmp_path / "set" / "rule_01.py", window_length=64)
    assert single.rules[0].source == source and single.window_length == 64


def test_loading_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="no such rule set"):
        load_rule_set(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="manifest.json is missing"):
        load_rule_set(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / MANIFEST).write_text(json.dumps({"format": "anomamind-rules/1", "rules": [{"file": "gone.py"}]}))
    with pytest.raises(DataError, match="rule file 'gone.py' is missing"):
        load_rule_set(bad)
    with pytest.raises(DataError, match="combine_with needs"):
        RuleSet([Rule("r", "")], combine_with={"detector": "sr", "mode": "xor"})


def test_rule_windows_cover_the_series_and_keep_full_length_at_the_tail():
    assert rule_windows(2500, 1000) == [(0, 1000), (1000, 2000), (1500, 2500)]
    assert rule_windows(300, 1000) == [(0, 300)]
    assert rule_windows(2000, 1000) == [(0, 1000), (1000, 2000)]


def test_macro_f1_matches_point_prf_series_by_series():
    rng = np.random.default_rng(0)
    lengths = [50, 80, 30]
    labels = [rng.random(n) < 0.2 for n in lengths]
    labels[2][:] = False  # a series without anomalies counts as F1 0
    preds = [rng.random(n) < 0.3 for n in lengths]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    scorer = MacroF1(np.concatenate(labels), starts)
    expected = [point_prf(y, p)[2] for y, p in zip(labels, preds)]
    assert np.allclose(scorer.per_series(np.concatenate(preds)), expected)
    assert scorer(np.concatenate(preds)) == pytest.approx(np.mean(expected))


def test_combine_and_removes_or_adds():
    base = np.array([1, 1, 0, 0], dtype=bool)
    rules = np.array([1, 0, 1, 0], dtype=bool)
    assert combine(base, rules, "and").tolist() == [True, False, False, False]
    assert combine(base, rules, "or").tolist() == [True, True, True, False]
    assert combine(None, rules, None) is rules
    with pytest.raises(ValueError, match="unknown combination mode"):
        combine(base, rules, "xor")


def test_split_is_by_series_deterministic_and_disjoint():
    series = [Series(np.zeros(10), np.zeros(10), name=f"s{i}") for i in range(20)]
    parts = split_series(series, SplitSpec())
    again = split_series(list(reversed(series)), SplitSpec())
    names = {k: sorted(s.name for s in v) for k, v in parts.items()}
    assert names == {k: sorted(s.name for s in v) for k, v in again.items()}
    assert (len(names["train"]), len(names["validation"]), len(names["test"])) == (8, 4, 8)
    assert not set(names["train"]) & set(names["test"])
    with pytest.raises(DataError, match="overlap"):
        SplitSpec(train=(0, 1), validation=(1,))


def test_build_split_windows_never_cross_series():
    series = [Series(np.arange(25.0), np.zeros(25), name="a"), Series(np.arange(7.0), np.zeros(7), name="b")]
    split = build_split(series, window_length=10)
    assert split.bounds == [(0, 10), (10, 20), (15, 25), (25, 32)]
    assert split.window_series == [0, 0, 0, 1]
    with pytest.raises(DataError, match="unlabelled"):
        build_split([Series(np.zeros(5), name="u")], 10)


@pytest.mark.parametrize(
    "file, words",
    [
        ("/etc/hostname", "must be a relative path inside the rule set folder"),
        ("../outside.py", "must be a relative path inside the rule set folder"),
        ("sub/../../outside.py", "must be a relative path inside the rule set folder"),
        ("", "must be a relative path inside the rule set folder"),
        (None, "must be a relative path inside the rule set folder"),
        ("link.py", "points outside the rule set folder"),
    ],
)
def test_manifest_paths_must_stay_inside_the_rule_set_folder(tmp_path, file, words):
    """A shared rule folder must not make the loader read files elsewhere."""
    (tmp_path / "outside.py").write_text("def detect(values):\n    return values > 0\n")
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "link.py").symlink_to(tmp_path / "outside.py")
    (folder / MANIFEST).write_text(json.dumps({"format": "anomamind-rules/1", "rules": [{"file": file}]}))
    with pytest.raises(DataError, match=words) as info:
        load_rule_set(folder)
    assert str(folder / MANIFEST) in str(info.value)
