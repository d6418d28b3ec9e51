"""One command line: --out for outputs, --detector NAME in detect and bench, --set KEY=VALUE
for every override (ablation switches included), help text on every option, the old
spellings still working with a deprecation note, and `anomamind detectors`."""

from __future__ import annotations

import argparse
import json

import pytest

from anomamind.cli import build_parser, main
from anomamind.cli_options import DeprecatedAlias, detector_options, options_per_detector
from anomamind.config import ConfigError
from anomamind.paths import CONFIG_DIR

#: Commands that write files, each must take --out.
WRITING_COMMANDS = [
    ("data", "fetch"), ("data", "synth"), ("bench",), ("detect",), ("prepare",), ("train",),
    ("sweep",), ("infer",), ("rules", "train"), ("rules", "bench"), ("tools", "plot"),
    ("logs", "synth"), ("logs", "train"), ("logs", "bench"),
]
#: Commands that take overrides, each must take --set KEY=VALUE.
OVERRIDING_COMMANDS = [("train",), ("detect",), ("bench",), ("prepare",), ("sweep",), ("rules", "train"),
                       ("logs", "train"), ("logs", "info")]
#: Other spellings of an output folder that may only live on as aliases of --out.
OUTPUT_SPELLINGS = {"--dest", "--output_dir", "--output-dir", "--output", "--outdir", "--out-dir"}


def leaf_parsers(parser: argparse.ArgumentParser | None = None, path: tuple[str, ...] = ()):
    """(command path, parser, help given to the subcommand) for every command of the tree."""
    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield path + (name,), sub, helps.get(name)
                yield from leaf_parsers(sub, path + (name,))


def parser_of(path: tuple[str, ...]) -> argparse.ArgumentParser:
    return {p: sub for p, sub, _ in leaf_parsers()}[path]


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


def test_every_command_and_every_option_has_help() -> None:
    missing = []
    for path, parser, command_help in leaf_parsers():
        if not command_help:
            missing.append(" ".join(path))
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip():
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"without help text: {missing}"


def test_outputs_are_spelled_out_everywhere() -> None:
    for path in WRITING_COMMANDS:
        assert option(parser_of(path), "--out") is not None, f"{' '.join(path)} has no --out"
    for path, parser, _ in leaf_parsers():
        for action in parser._actions:
            other = OUTPUT_SPELLINGS & set(action.option_strings)
            if other:  # only as an alias: on the --out option itself, or a deprecated spelling of it
                assert "--out" in action.option_strings or isinstance(action, DeprecatedAlias), (path, other)


def test_overrides_are_one_repeatable_set_option() -> None:
    for path in OVERRIDING_COMMANDS:
        action = option(parser_of(path), "--set")
        assert isinstance(action, argparse._AppendAction), f"{' '.join(path)} has no repeatable --set"
    for path, parser, _ in leaf_parsers():
        for flag in ("--detector-option", "--option", "--override"):
            action = option(parser, flag)
            assert action is None or isinstance(action, DeprecatedAlias), (path, flag)


def test_train_takes_out_and_repeated_set() -> None:
    args, extra = parser_of(("train",)).parse_known_args(
        ["--config", "c.yaml", "--out", "runs/x", "--set", "grpo.max_steps=3", "--set", "rewards.enabled=[two_sided]"])
    assert (args.out, args.set, extra) == ("runs/x", ["grpo.max_steps=3", "rewards.enabled=[two_sided]"], [])
    for alias in ("--output_dir", "--output-dir"):  # the Hugging Face spelling stays an alias
        assert parser_of(("train",)).parse_known_args(["--config", "c.yaml", alias, "d"])[0].out == "d"


def test_the_accelerate_entry_point_takes_the_train_grammar(monkeypatch, tmp_path) -> None:
    import importlib.util

    from anomamind.paths import REPO_ROOT
    from anomamind.rl import train as train_module

    spec = importlib.util.spec_from_file_location("train_grpo", REPO_ROOT / "scripts" / "train_grpo.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    calls = []
    monkeypatch.setattr(train_module, "train_from_config", lambda *a: calls.append(a) or {})
    assert script.main(["--config", "c.yaml", "--out", "runs/x", "--set", "grpo.max_steps=2"]) == 0
    assert calls == [("c.yaml", ["grpo.max_steps=2"], "runs/x", {})]


def test_train_keeps_the_old_spellings_with_a_note(tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("trl")
    from anomamind.rl import train as train_module

    calls = []
    monkeypatch.setattr(train_module, "train_from_config", lambda *a: calls.append(a) or {"checkpoint": "x"})
    config = tmp_path / "c.yaml"
    config.write_text("mode: grpo\n")
    assert main(["train", "--config", str(config), "--output_dir", "d", "--set", "grpo.max_steps=1",
                 "rewards.enabled=[two_sided]", "--learning_rate", "2e-6"]) == 0
    (path, overrides, out, trainer_args), = calls
    assert overrides == ["grpo.max_steps=1", "rewards.enabled=[two_sided]"] and out == "d"
    assert trainer_args == {"learning_rate": 2e-6}
    err = capsys.readouterr().err
    assert "write '--set rewards.enabled=[two_sided]'" in err
    assert "write '--set grpo.learning_rate=2.0e-06'" in err


def test_detect_and_bench_name_detectors_the_same_way(capsys) -> None:
    detect = parser_of(("detect",))
    assert detect.parse_args(["s.csv", "--out", "o"]).detector == "heuristic-agent"
    assert detect.parse_args(["s.csv", "--out", "o", "--detector", "llm-agent"]).detector == "llm-agent"
    assert detect.parse_args(["s.csv", "--out", "o", "--agent", "llm"]).detector == "llm-agent"
    assert "write '--detector llm-agent'" in capsys.readouterr().err
    bench = parser_of(("bench",)).parse_args(["--data", "d", "--out", "o", "--detector", "heuristic-agent"])
    assert bench.detector == ["heuristic-agent"]


def test_detect_runs_a_baseline_by_its_bench_name(tmp_path) -> None:
    out = tmp_path / "out"
    assert main(["detect", "synthetic:3", "--detector", "sr", "--set", "score_window=21", "--out", str(out)]) == 0
    record = json.loads((out / "detection.json").read_text())
    assert record["detector"] == "sr" and record["options"] == {"score_window": 21}
    assert record["intervals"] and all(iv["explanation"] == "points flagged by sr" for iv in record["intervals"])
    assert main(["detect", "synthetic:3", "--detector", "nope", "--out", str(out)]) == 2


ABLATIONS = {"disable": ["localization"], "evaluator": False, "causal": True}


def test_ablation_switches_are_spelled_the_same_in_every_command(capsys) -> None:
    bare = ["disable=[localization]", "evaluator=false", "causal=true"]
    detect = parser_of(("detect",)).parse_args(["s.csv", "--out", "o", *sum((["--set", i] for i in bare), [])])
    prepare = parser_of(("prepare",)).parse_args(["--data", "d", "--out", "o", *sum((["--set", i] for i in bare), [])])
    bench = parser_of(("bench",)).parse_args(
        ["--data", "d", "--out", "o", "--detector", "heuristic-agent", "--detector", "sr",
         *sum((["--set", f"heuristic-agent.{i}"] for i in bare), []), "--set", "sr.score_window=21"])
    assert detector_options(detect.set, "heuristic-agent") == ABLATIONS
    assert detector_options(prepare.set, "heuristic-agent") == ABLATIONS
    assert options_per_detector(bench.set, bench.detector) == {"heuristic-agent": ABLATIONS, "sr": {"score_window": 21}}
    # detect's old flags are the same switches
    old = parser_of(("detect",)).parse_args(["s.csv", "--out", "o", "--disable", "localization", "--no-evaluator", "--causal"])
    assert detector_options(old.set, "heuristic-agent") == ABLATIONS
    assert capsys.readouterr().err.count("is deprecated") == 3


def test_prepare_passes_the_set_options_to_its_agent(monkeypatch) -> None:
    pytest.importorskip("datasets")
    from anomamind.rl import prepare

    seen = []
    monkeypatch.setattr(prepare, "prepare_dataset", lambda cfg: seen.append(cfg) or {"splits": {}, "failures": []})
    assert main(["prepare", "--data", "synthetic:2", "--out", "o", "--set", "disable=[localization]",
                 "--set", "knowledge.SYNTHETIC.thresholds.spike=7"]) == 0
    cfg = seen[0]
    assert cfg.agent_options == {"disable": ["localization"], "knowledge.SYNTHETIC.thresholds.spike": 7}
    agent = prepare._make_agent(cfg)  # the ablation and the config override reach the workflow
    assert agent.workflow.config.disable == ("localization",)
    assert agent.role_config["config"]["knowledge"] == {"SYNTHETIC": {"thresholds": {"spike": 7}}}


def test_sweep_set_overrides_every_variant(monkeypatch, tmp_path) -> None:
    from anomamind.rl import sweep

    seen = []
    monkeypatch.setattr(sweep, "run_sweep", lambda s, out, only=None, command="": seen.append((s, command)) or [])
    (tmp_path / "table.md").write_text("table\n")
    sweep_file = str(CONFIG_DIR / "sweeps" / "workflow_ablations.yaml")
    assert main(["sweep", sweep_file, "--out", str(tmp_path), "--set", "workers=1", "--set", "detector_options.window=50"]) == 0
    loaded, command = seen[0]
    assert command.startswith(f"anomamind sweep {sweep_file} --out")
    for variant in loaded.variants:
        assert variant.settings["workers"] == 1 and variant.settings["detector_options"]["window"] == 50
    assert loaded.variants[0].settings["detector_options"]["disable"] == ["feature_extraction"]


def test_bench_set_names_the_detector_even_with_dots_in_its_name() -> None:
    detectors = ["checkpoint:runs/q0.6b/final", "sr"]
    items = ["checkpoint:runs/q0.6b/final.max_tokens=64", "sr.score_window=21"]
    assert options_per_detector(items, detectors) == {"checkpoint:runs/q0.6b/final": {"max_tokens": 64},
                                                      "sr": {"score_window": 21}}
    with pytest.raises(ConfigError, match="must start with one of the --detector names"):
        options_per_detector(["score_window=21"], ["sr"])


def test_bench_keeps_detector_option_as_a_deprecated_alias(capsys) -> None:
    args = parser_of(("bench",)).parse_args(
        ["--data", "d", "--out", "o", "--detector", "sr", "--detector-option", "sr.score_window=21", "--set", "sr.mag_window=3"])
    assert args.set == ["sr.score_window=21", "sr.mag_window=3"]
    assert "write '--set sr.score_window=21'" in capsys.readouterr().err


def test_fetch_takes_out_and_still_dest(capsys) -> None:
    fetch = parser_of(("data", "fetch"))
    assert fetch.parse_args(["tsb-ad-u", "--out", "d"]).out == "d"
    assert fetch.parse_args(["tsb-ad-u", "--dest", "d"]).out == "d"
    assert "write '--out d'" in capsys.readouterr().err


def test_detectors_lists_each_with_a_description_and_marks_missing_extras(monkeypatch, capsys) -> None:
    import importlib.util

    from anomamind.eval import registry

    for name in registry.DETECTORS:
        entry = registry.DETECTORS[name]
        assert isinstance(entry, registry.DetectorEntry) and entry.summary, name
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "stumpy" else real(name, *a))
    assert main(["detectors"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(lines) == set(registry.available_detectors())
    assert "missing stumpy: pip install 'anomamind[matrixprofile]'" in lines["matrix-profile"]
    assert "Spectral Residual" in lines["sr"] and "missing" not in lines["sr"]
