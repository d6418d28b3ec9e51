"""The LLM log proposer against the local fake chat server: CodeAD's generate -> test on the
contrastive samples -> repair from the sandbox's error -> refine from misclassified windows."""

from __future__ import annotations

import pytest
from fake_chat_server import FakeChatServer

from anomamind.agents.backends.openai_compat import OpenAICompatBackend
from anomamind.envs.log_synthetic import generate_log
from anomamind.envs.log_windows import LogWindowSpec
from anomamind.rules.log_data import split_log
from anomamind.rules.log_proposer_llm import LogLLMProposer
from anomamind.rules.log_sampler import contrastive_sample
from anomamind.rules.log_task import LogTask
from anomamind.rules.log_train import LogRuleTrainConfig
from anomamind.rules.loop import LLMOptions, RuleTrainer
from anomamind.rules.sandbox import SandboxLimits

SESSIONS = LogWindowSpec(by="session")
LIMITS = SandboxLimits(time_limit_s=10.0, memory_limit_mb=512, seconds_per_million_points=120.0)

BROKEN = """```python
def detect(lines):
    # a refused database connection (forgot to import re)
    return any(REFUSED.search(line) for line in lines)
```"""

FIXED = """Here is the fix.
```python
import re

# a request whose database connection was refused
REFUSED = re.compile(r"connection refused by \\S+")


def detect(lines):
    # a refused database connection means the request failed
    return any(REFUSED.search(line) for line in lines)
```"""

EVERYTHING = """```python
def detect(lines):
    # every window (a careless first try)
    return True
```"""

NOTHING = """```python
def detect(lines):
    # flags nothing at all
    return False
```"""


@pytest.fixture(scope="module")
def parts():
    return split_log(generate_log(4000, seed=11, anomaly_rate=0.05, kinds=("ERROR",)), SESSIONS)


def trainer_for(parts, server, max_rounds: int = 1) -> RuleTrainer:
    config = LogRuleTrainConfig(window=SESSIONS, max_rounds=max_rounds, candidates_per_round=1, mutate_top=1,
                                patience=5, top_k=1, sandbox=LIMITS)
    sample = contrastive_sample(parts["train"], config.sampler)
    backend = OpenAICompatBackend("fake", base_url=server.base_url, api_key_env=None)
    proposer = LogLLMProposer(backend, parts["train"], sample, SESSIONS, LLMOptions(example_windows=2),
                              dataset="SYN", name_prefix="syn")
    return RuleTrainer(proposer, LogTask(parts["train"], parts["validation"], sample, SESSIONS), config)


def test_broken_rule_is_repaired_and_a_regression_is_refined(parts):
    # round 0: propose (broken) -> repair (fixed, right on every sample: no refinement);
    # round 1: propose (same code: skipped), mutate (flags nothing) -> regression -> refine (fixed again: skipped)
    script = [BROKEN, FIXED, FIXED, NOTHING, FIXED]
    with FakeChatServer(script) as server:
        trainer = trainer_for(parts, server, max_rounds=2)
        chosen, f1 = trainer.run()
        requests = server.requests
    assert len(requests) == 5
    system = requests[0]["messages"][0]["content"]
    assert "def detect(lines: list[str]) -> bool" in system and "one window per session" in system
    propose = requests[0]["messages"][1]["content"]
    assert "ANOMALOUS window" in propose and "nearest NORMAL window" in propose
    assert "connection refused" in propose and "\n  * " in propose  # anomalous lines are marked
    repair = requests[1]["messages"][1]["content"]
    assert "NameError: name 'REFUSED' is not defined" in repair and "forgot to import re" in repair
    assert trainer.rejected[0]["kind"] == "raised" and trainer.rejected[0]["stage"] == "check"
    mutate = requests[3]["messages"][1]["content"]
    assert "rule for the \"SYN\" logs" in mutate and "REFUSED" in mutate  # the name quoted (issue 17)
    refine = requests[4]["messages"][1]["content"]
    assert "Validation window F1 fell from 1.000" in refine and "the rule did not flag it" in refine
    assert chosen[0].candidate.origin == "repaired" and f1 == 1.0


def test_a_rule_that_misclassifies_the_contrastive_samples_is_refined(parts):
    with FakeChatServer([EVERYTHING, FIXED]) as server:
        trainer = trainer_for(parts, server)
        chosen, f1 = trainer.run()
        requests = server.requests
    assert len(requests) == 2
    refine = requests[1]["messages"][1]["content"]
    assert "On the contrastive training sample the rule is wrong on" in refine
    assert "- a normal window" in refine and "the rule flagged it" in refine and "return True" in refine
    origins = sorted(e.candidate.origin for e in trainer.pool.values())
    assert origins == ["proposed", "refined"] and chosen[0].candidate.origin == "refined" and f1 == 1.0


def test_logs_train_cli_with_the_llm_proposer(tmp_path, capsys):
    """`anomamind logs train --config configs/rules/logs_llm.yaml` against the fake server."""
    from anomamind.cli import main
    from anomamind.envs.log_synthetic import write_log
    from anomamind.paths import CONFIG_DIR
    from anomamind.rules.rule import load_rule_set

    log = write_log(generate_log(4000, seed=11, anomaly_rate=0.05, kinds=("ERROR",)), tmp_path / "syn.log")
    with FakeChatServer(lambda body: FIXED) as server:
        code = main(["logs", "train", str(log), "--out", str(tmp_path / "rules"),
                     "--config", str(CONFIG_DIR / "rules" / "logs_llm.yaml"), "--set", "window.by=session",
                     "--set", f"llm.backend.base_url={server.base_url}", "--set", "llm.backend.api_key_env=null",
                     "--set", "max_rounds=1", "--set", "candidates_per_round=1"])
    assert code == 0, capsys.readouterr()
    rule_set = load_rule_set(tmp_path / "rules" / "SYNTHETIC")
    assert rule_set.modality == "logs" and rule_set.rules[0].meta["proposer"] == "llm"
    assert "connection refused" in rule_set.rules[0].source and rule_set.info["test"]["f1"] == 1.0
