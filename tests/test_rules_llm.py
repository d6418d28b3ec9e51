"""The LLM proposer against the local fake chat server: a broken rule is repaired from
the sandbox's error, a regressing mutant is refined from the windows that got worse."""

import json

import numpy as np
from fake_chat_server import FakeChatServer, FakeError, reply

from anomamind.agents.backends.openai_compat import OpenAICompatBackend
from anomamind.rules.data import build_split
from anomamind.rules.loop import LLMOptions, RuleTrainConfig, RuleTrainer, SeriesTask
from anomamind.rules.proposer_llm import LLMProposer, extract_code, feature_api
from anomamind.rules.sandbox import SandboxLimits
from anomamind.types import Series

BROKEN = """```python
import numpy as np

def detect(values):
    # spikes: far from the median (forgot to import the feature library)
    return np.abs(F.robust_zscore(values)) > 4
```"""

FIXED = """Here is the fix.
```python
import numpy as np
from anomamind.rules import features as F

def detect(values):
    # spikes: far from the window's median, in robust standard deviations
    return np.abs(F.robust_zscore(values)) > 4
```"""

WORSE = """```python
import numpy as np

def detect(values):
    # flags nothing at all
    return np.zeros(values.size, dtype=np.int8)
```"""

REFINED = """```python
import numpy as np
from anomamind.rules import features as F

def detect(values):
    # spikes: a sudden jump into the point
    return np.abs(F.diff_zscore(values)) > 5
```"""


def spiky(seed: int, n: int = 600) -> Series:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n)
    labels = np.zeros(n, dtype=np.int8)
    for start in (100, 400):
        values[start] += 9
        labels[start] = 1
    return Series(values, labels, name=f"s{seed}")


def test_broken_rule_is_repaired_and_regression_is_refined():
    train = build_split([spiky(0), spiky(1)], 300)
    validation = build_split([spiky(2), spiky(3)], 300)
    config = RuleTrainConfig(max_rounds=2, candidates_per_round=1, mutate_top=1, patience=5, top_k=1,
                             sandbox=SandboxLimits(time_limit_s=5.0))
    # round 0: propose (broken) -> repair (fixed); round 1: propose (same as fixed: skipped),
    # mutate (worse) -> regression -> refine
    script = [BROKEN, FIXED, FIXED, WORSE, REFINED]
    with FakeChatServer(script) as server:
        backend = OpenAICompatBackend("fake", base_url=server.base_url, api_key_env=None)
        proposer = LLMProposer(backend, train, LLMOptions(), dataset="SPIKY", name_prefix="spiky")
        trainer = RuleTrainer(proposer, SeriesTask(train, validation, config), config)
        chosen, f1 = trainer.run()
        requests = server.requests

    assert len(requests) == 5
    system = requests[0]["messages"][0]["content"]
    assert "def detect(values: np.ndarray)" in system and "F.robust_zscore" in system
    assert "Example 1" in requests[0]["messages"][1]["content"]
    repair_prompt = requests[1]["messages"][1]["content"]
    assert "NameError: name 'F' is not defined" in repair_prompt and "forgot to import" in repair_prompt
    assert trainer.rejected[0]["kind"] == "raised" and trainer.rejected[0]["stage"] == "check"
    refine_prompt = requests[4]["messages"][1]["content"]
    assert "Validation F1 fell from 1.000" in refine_prompt and "new rule flagged nothing" in refine_prompt

    origins = {e.candidate.name: e.candidate.origin for e in trainer.pool.values()}
    assert sorted(origins.values()) == ["mutated", "refined", "repaired"]
    assert chosen[0].candidate.origin in {"repaired", "refined"} and f1 == 1.0


def test_backend_failure_means_no_proposal_not_a_crash():
    train = build_split([spiky(0)], 300)
    with FakeChatServer([FakeError(500)] * 3) as server:
        backend = OpenAICompatBackend("fake", base_url=server.base_url, api_key_env=None, max_retries=0)
        proposer = LLMProposer(backend, train)
        assert proposer.propose(1, seed=0) == []


def test_extract_code_and_feature_api():
    assert extract_code("text\n```python\nx = 1\n```\nmore") == "x = 1\n"
    assert extract_code("def detect(v):\n    return v") == "def detect(v):\n    return v\n"
    api = feature_api()
    assert "F.diff_zscore(values: np.ndarray) -> np.ndarray" in api


def test_rules_train_cli_with_the_llm_proposer(tmp_path, capsys):
    """`anomamind rules train --config configs/rules/llm.yaml` against the fake server."""
    from anomamind.cli import main
    from anomamind.envs.synthetic import write_tsbad_csv
    from anomamind.paths import CONFIG_DIR

    for seed in range(6):
        series = spiky(seed)
        series.name = f"{100 + seed}_SPIKY_id_{seed}_Synthetic_tr_300_1st_100"
        write_tsbad_csv(series, tmp_path / "data" / "SPIKY")
    with FakeChatServer(lambda body: FIXED) as server:
        code = main(["rules", "train", "--data", str(tmp_path / "data"), "--datasets", "SPIKY",
                     "--out", str(tmp_path / "rules"), "--config", str(CONFIG_DIR / "rules" / "llm.yaml"),
                     "--set", f"llm.backend.base_url={server.base_url}", "--set", "llm.backend.api_key_env=null",
                     "--set", "max_rounds=1", "--set", "candidates_per_round=1", "--set", "window_length=300"])
    assert code == 0, capsys.readouterr().out
    from anomamind.rules.rule import load_rule_set

    rule_set = load_rule_set(tmp_path / "rules" / "SPIKY")
    assert rule_set.rules[0].meta["proposer"] == "llm"
    assert "robust_zscore(values)) > 4" in rule_set.rules[0].source


def _spiky_data(tmp_path):
    from anomamind.envs.synthetic import write_tsbad_csv

    for seed in range(6):
        series = spiky(seed)
        series.name = f"{100 + seed}_SPIKY_id_{seed}_Synthetic_tr_300_1st_100"
        write_tsbad_csv(series, tmp_path / "data" / "SPIKY")
    return tmp_path / "data"


def _rules_train(data, out, base_url, *extra):
    from anomamind.cli import main
    from anomamind.paths import CONFIG_DIR

    return main(["rules", "train", "--data", str(data), "--datasets", "SPIKY", "--out", str(out),
                 "--config", str(CONFIG_DIR / "rules" / "llm.yaml"), "--set", f"llm.backend.base_url={base_url}",
                 "--set", "llm.backend.api_key_env=null", "--set", "llm.backend.max_retries=0",
                 "--set", "max_rounds=1", "--set", "candidates_per_round=2", "--set", "window_length=300", *extra])


def test_rules_train_against_a_dead_endpoint_says_so_and_exits_1(tmp_path, capsys):
    with FakeChatServer([]) as server:
        url = server.base_url  # closed once the server stops
    code = _rules_train(_spiky_data(tmp_path), tmp_path / "rules", url)
    err = capsys.readouterr().err
    assert code == 1
    assert f"error: {url}/models: the endpoint does not answer" in err
    assert "none proposed" not in err


def test_rejected_llm_candidates_are_sampled_in_the_manifest_and_the_first_is_shown(tmp_path, capsys, caplog):
    prose = "I would flag the spikes by looking at how big they are compared to the rest"
    answers = [prose + ".", prose + "!", FIXED]  # two rejected (no code at all), one that passes
    with FakeChatServer(lambda body: answers.pop(0) if answers else FIXED) as server:
        code = _rules_train(_spiky_data(tmp_path), tmp_path / "rules", server.base_url, "--set", "max_repairs=0",
                            "--set", "candidates_per_round=3")
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "rules" / "SPIKY" / "manifest.json").read_text())
    rejected = manifest["training"]["rejected"]
    assert len(rejected) == 2 and all(r["sample"].startswith("I would flag the spikes") for r in rejected)
    assert rejected[0]["kind"] == "syntax"
    assert "first rejected candidate" in caplog.text and "I would flag the spikes" in caplog.text


def test_nothing_passing_ends_with_the_first_rejected_candidate_and_failed_requests_are_counted(tmp_path, capsys):
    prose = "Sorry, I cannot write code."
    with FakeChatServer(lambda body: prose) as server:
        code = _rules_train(_spiky_data(tmp_path), tmp_path / "rules", server.base_url, "--set", "max_repairs=0")
    out = capsys.readouterr().out
    assert code == 1
    assert "no candidate passed the check and validation (rejections: syntax)" in out
    assert "the first rejected candidate (syntax: " in out and "Sorry, I cannot write code." in out
    train = build_split([spiky(0)], 300)
    with FakeChatServer([FakeError(500), reply("```python\nx = 1\n", finish_reason="length")]) as server:
        backend = OpenAICompatBackend("fake", base_url=server.base_url, api_key_env=None, max_retries=0)
        proposer = LLMProposer(backend, train)
        assert len(proposer.propose(2, seed=0)) == 1  # the failed request proposes nothing
    assert proposer.report()["failures"] == {"backend_error": 1, "cut_at_max_tokens": 1}


def test_the_proposal_prompt_fits_the_context_with_fewer_examples_or_is_not_sent():
    train = build_split([spiky(k) for k in range(4)], 300)
    with FakeChatServer(lambda body: FIXED) as server:
        roomy = LLMProposer(OpenAICompatBackend("fake", base_url=server.base_url, api_key_env=None), train,
                            LLMOptions(example_windows=3), dataset="SPIKY")
        small = OpenAICompatBackend("fake", base_url=server.base_url, api_key_env=None, context_tokens=2000)
        tight = LLMProposer(small, train, LLMOptions(example_windows=3, max_tokens=400), dataset="SPIKY")
        tiny = LLMProposer(OpenAICompatBackend("fake", base_url=server.base_url, api_key_env=None, context_tokens=900),
                           train, LLMOptions(max_tokens=400), dataset="SPIKY")
        assert len(roomy.propose(1, seed=0)) == len(tight.propose(1, seed=0)) == 1
        assert tiny.propose(1, seed=0) == []
        sent = [b["messages"][1]["content"] for b in server.requests]
    assert len(sent) == 2  # the tiny context's prompt was never sent
    assert "Example 3" in sent[0] and "Example 2" not in sent[1] and "Example 1" in sent[1]  # 1,476 of 1,600 tokens
    assert tiny.report()["failures"] == {"context_overflow": 1}
    assert "rule proposer: the prompt needs" in tiny.report()["first_errors"]["context_overflow"]
