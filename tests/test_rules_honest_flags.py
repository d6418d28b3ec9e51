"""The honest rule sets of benchmarks/rules/ give the same flags as recorded before the
sandbox was hardened (fixtures/rules_honest_flags.json, see honest_rule_sets.py)."""

import json

import pytest
from honest_rule_sets import FIXTURE, RULE_SETS, rule_set_flags


@pytest.fixture(scope="module")
def current():
    return rule_set_flags()


@pytest.mark.parametrize("name", RULE_SETS)
def test_honest_rule_set_flags_are_unchanged(name, current):
    recorded = json.loads(FIXTURE.read_text())[name]
    assert any(any(rule) for rule in recorded), "the fixture must contain flags to compare"
    assert current[name] == recorded
