"""The offline training loop end to end on generated data: CLI train, resume, show, the
benchmark-runner detector, and training rules for AND/OR combination with a detector."""

import json

import numpy as np
import pytest

from anomamind.cli import main
from anomamind.eval.registry import create_detector
from anomamind.rules.data import SplitSpec, build_split
from anomamind.rules.loop import RuleTrainConfig, train_rule_set
from anomamind.rules.proposer_offline import OfflineProposer
from anomamind.rules.sandbox import SandboxLimits
from anomamind.types import Series


def spiky_series(seed: int, n: int = 1200) -> Series:
    """Noisy seasonal series with a few labelled spikes (3 points each)."""
    rng = np.random.default_rng(seed)
    values = np.sin(np.arange(n) * 2 * np.pi / 50) + 0.1 * rng.normal(size=n)
    labels = np.zeros(n, dtype=np.int8)
    for start in rng.choice(np.arange(50, n - 50, 60), size=3, replace=False):
        values[start:start + 3] += rng.choice([-1, 1]) * rng.uniform(3, 5)
        labels[start:start + 3] = 1
    return Series(values, labels, name=f"{100 + seed:03d}_SPIKY_id_{seed}_Synthetic_tr_500_1st_50", dataset="SPIKY")


FAST = dict(window_length=300, max_rounds=2, candidates_per_round=2, mutate_top=1, top_k=2,
            sandbox=SandboxLimits(time_limit_s=5.0, memory_limit_mb=512))


def test_offline_loop_learns_a_rule_that_finds_spikes():
    series = [spiky_series(s) for s in range(6)]
    train = build_split(series[:3], 300)
    validation = build_split(series[3:], 300)
    proposer = OfflineProposer(train, beam_width=3, max_conditions=2)
    result = train_rule_set(proposer, train, validation, RuleTrainConfig(**FAST), dataset="SPIKY")
    assert result.validation_f1 > 0.6  # spikes this clear are easy; a broken loop scores ~0
    assert 1 <= len(result.rule_set.rules) <= 2
    assert len(result.history) >= 1 and result.rejected == []
    rule = result.rule_set.rules[0]
    assert rule.meta["validation_f1"] > 0.5 and rule.meta["thresholds"]
    assert any("Condition:" in c for c in rule.comments())
    # mutants record their parent; the pool keeps the parents too
    mutants = [e.candidate for e in result.pool if e.candidate.origin == "mutated"]
    assert mutants and all(m.parent in {e.candidate.name for e in result.pool} for m in mutants)


def test_training_for_and_combination_removes_false_positives():
    series = [spiky_series(s) for s in range(6)]
    # a "detector" that flags every spike and also every crest of the seasonal pattern
    base = [np.asarray(s.labels, bool) | (s.values > 0.9) for s in series]
    train = build_split(series[:3], 300, base[:3])
    validation = build_split(series[3:], 300, base[3:])
    config = RuleTrainConfig(**FAST, combine_with="fake", combine_mode="and")
    result = train_rule_set(OfflineProposer(train, combine_mode="and", beam_width=3, max_conditions=2),
                            train, validation, config)
    from anomamind.rules.scoring import MacroF1

    base_f1 = MacroF1(validation.labels, validation.starts)(validation.base)
    assert result.validation_f1 > base_f1 + 0.2
    assert result.rule_set.combine_with == {"detector": "fake", "mode": "and"}


def test_cli_train_resume_show_and_detector(tmp_path, capsys):
    from anomamind.envs.synthetic import write_tsbad_csv

    data = tmp_path / "data" / "SPIKY"
    for s in range(10):
        write_tsbad_csv(spiky_series(s), data)
    out = tmp_path / "rules"
    args = ["rules", "train", "--data", str(tmp_path / "data"), "--datasets", "SPIKY", "--out", str(out),
            "--set", "window_length_choices=[200, 300]", "--set", "max_rounds=1", "--set", "offline.beam_width=2",
            "--set", "offline.max_conditions=2"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["dataset"] == "SPIKY" and summary["test"]["n_series"] == 4
    manifest = json.loads((out / "SPIKY" / "manifest.json").read_text())
    split = manifest["split"]["series"]
    assert not set(split["train"]) & set(split["test"]) and not set(split["validation"]) & set(split["test"])
    assert manifest["test"] == summary["test"]
    tried = manifest["training"]["validation_f1_by_window_length"]
    assert set(tried) == {"200", "300"} and manifest["window"]["length"] == int(max(tried, key=tried.get))
    assert (out / "SPIKY" / "test_files.csv").read_text().count(".csv") == 4

    assert main(args) == 0  # resume: the finished dataset is skipped
    assert '"skipped": true' in capsys.readouterr().out

    assert main(["rules", "show", str(out / "SPIKY")]) == 0
    shown = capsys.readouterr().out
    assert "def detect(values" in shown and "test (held-out series)" in shown

    table = tmp_path / "table.md"
    assert main(["rules", "bench", "--rules", str(out), "--data", str(tmp_path / "data"), "--datasets", "SPIKY",
                 "--detector", "zscore", "--out", str(tmp_path / "bench"), "--table", str(table)]) == 0
    rows = [line for line in table.read_text().splitlines() if line.startswith("| SPIKY")]
    assert [r.split("|")[2].strip() for r in rows] == ["rules (learned)", "zscore"]
    assert all(r.split("|")[3].strip() == "4" for r in rows)  # only the 4 test series
    capsys.readouterr()

    detector = create_detector(f"rules:{out / 'SPIKY'}")
    prediction = detector.detect(spiky_series(42))
    assert prediction.pred.shape == (1200,) and prediction.failed_windows == 0
    assert set(np.unique(prediction.scores)) <= {0.0, 0.5, 1.0}
    detector.close()


def test_train_reports_a_bad_dataset_and_goes_on(tmp_path, capsys):
    from anomamind.envs.synthetic import write_tsbad_csv

    data = tmp_path / "data"
    write_tsbad_csv(spiky_series(1), data / "SPIKY")  # one series: too few to split
    code = main(["rules", "train", "--data", str(data), "--datasets", "SPIKY", "--out", str(tmp_path / "o")])
    assert code == 1
    assert "FAILED SPIKY" in capsys.readouterr().out
    assert main(["rules", "show", str(tmp_path / "nothing")]) == 2
    assert "no such rule set" in capsys.readouterr().err


def test_split_spec_in_config_rejects_overlap():
    from anomamind.config import ConfigError, load_config
    from anomamind.types import DataError

    with pytest.raises((DataError, ConfigError), match="overlap"):
        load_config(RuleTrainConfig, None, ["split.validation=[0]"])
    assert isinstance(load_config(RuleTrainConfig, None, []).split, SplitSpec)


def test_search_scores_exactly_what_the_rendered_rule_flags():
    """The offline search's fast masks and the rule file run in the sandbox must agree."""
    from anomamind.rules.proposer_offline import Condition, RuleSpec, render_rule
    from anomamind.rules.sandbox import SandboxWorker

    train = build_split([spiky_series(s) for s in range(3)], 300)
    proposer = OfflineProposer(train)
    spec = RuleSpec((Condition("local_z", "point", 3.0), Condition("jump_z", "window", 4.0),
                     Condition("saliency", "point", 1.0)))
    with SandboxWorker(SandboxLimits(time_limit_s=5.0)) as worker:
        flags = worker.run(render_rule(spec, "consistency"), train.values, train.bounds)
    assert flags.sum() > 0
    assert np.array_equal(flags.astype(bool), proposer._flags(spec))
