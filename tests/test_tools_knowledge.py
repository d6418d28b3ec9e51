"""Knowledge memory: taxonomy, selection by dataset/domain fields, retrieval, knowledge tools."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from anomamind.tools.context import ToolContext
from anomamind.tools.knowledge import KNOWLEDGE_DIR, KnowledgeError, KnowledgeMemory
from anomamind.tools.registry import default_registry
from anomamind.types import ANOMALY_TYPES, ToolCall


@pytest.fixture(scope="module")
def memory() -> KnowledgeMemory:
    return KnowledgeMemory.load()


def test_taxonomy_matches_the_data_model(memory: KnowledgeMemory) -> None:
    assert memory.taxonomy.names() == list(ANOMALY_TYPES)
    assert memory.taxonomy.get("Level Shift").name == "level-shift"
    assert memory.taxonomy.get("shapelet_deviation").definition


@pytest.mark.parametrize("dataset", ["YAHOO", "TODS", "IOPS", "WSD"])
def test_each_benchmark_has_its_own_entry_with_documented_thresholds(memory: KnowledgeMemory, dataset: str) -> None:
    knowledge = memory.for_series(dataset, "WebService")
    assert knowledge.dataset == dataset and knowledge.key == dataset.lower()
    assert knowledge.labelling and knowledge.typical_types
    assert set(knowledge.typical_types) <= set(ANOMALY_TYPES)
    if knowledge.thresholds:  # written by scripts/derive_knowledge.py from the dev split
        assert "dev split" in knowledge.thresholds_how
        assert all(t > 0 for t in knowledge.thresholds.values())


def test_selection_uses_fields_not_paths(memory: KnowledgeMemory) -> None:
    assert memory.for_series("yahoo", None).dataset == "YAHOO"
    assert memory.for_series("YAHOO", "Synthetic").domain == "Synthetic"
    assert memory.for_series("YAHOO", "Synthetic").domain_note
    # a path that merely contains a dataset name is not a dataset name
    assert memory.for_series("/data/YAHOO/001_YAHOO_id_1.csv", None).key == "generic"
    unknown = memory.for_series("my-sensors", "factory")
    assert unknown.key == "generic" and unknown.dataset == "generic"
    # generic is its own entry, not a concatenation of the others
    assert len(unknown.labelling) < sum(len(memory.for_series(d).labelling) for d in ("YAHOO", "TODS", "IOPS", "WSD"))


def test_retrieval_by_key_and_type(memory: KnowledgeMemory) -> None:
    by_type = memory.by_type("variance-change")
    assert by_type["name"] == "variance-change" and "variance_changes" in by_type["tools"]
    assert memory.get("type:level-shift")["name"] == "level-shift"
    assert memory.get("tool:spikes_and_dips")["score"] == "spike"
    assert memory.get("dataset:WSD")["dataset"] == "WSD"
    assert memory.get("flat-missing")["name"] == "flat-missing"
    with pytest.raises(KeyError, match="nothing in the knowledge memory"):
        memory.get("type:comet")
    with pytest.raises(KeyError, match="unknown anomaly type"):
        memory.by_type("comet")


def test_every_registered_tool_has_semantics_and_every_semantics_a_tool(memory: KnowledgeMemory) -> None:
    registry = default_registry()
    for name in registry.names():
        assert memory.tool_semantics(name)["meaning"]
    documented = yaml.safe_load((KNOWLEDGE_DIR / "tools.yaml").read_text())["tools"]
    assert set(documented) == set(registry.names())


def test_tool_types_referenced_in_taxonomy_exist() -> None:
    registry = default_registry()
    taxonomy = yaml.safe_load((KNOWLEDGE_DIR / "taxonomy.yaml").read_text())["types"]
    for name, entry in taxonomy.items():
        for tool in entry["tools"]:
            assert tool in registry, f"taxonomy {name} names unknown tool {tool}"


def test_broken_knowledge_files_name_the_file(tmp_path: Path) -> None:
    copy = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, copy)
    taxonomy = yaml.safe_load((copy / "taxonomy.yaml").read_text())
    del taxonomy["types"]["flat-missing"]
    (copy / "taxonomy.yaml").write_text(yaml.safe_dump(taxonomy))
    with pytest.raises(KnowledgeError, match=r"taxonomy\.yaml.*missing \['flat-missing'\]"):
        KnowledgeMemory.load(copy)
    shutil.copy(KNOWLEDGE_DIR / "taxonomy.yaml", copy / "taxonomy.yaml")
    (copy / "wsd.yaml").write_text("dataset: WSD\ndescription: x\nlabelling: []\ntypical_types: [comet]\n")
    with pytest.raises(KnowledgeError, match=r"wsd\.yaml.*comet"):
        KnowledgeMemory.load(copy)
    (copy / "wsd.yaml").write_text("- not a mapping\n")
    with pytest.raises(KnowledgeError, match=r"wsd\.yaml: expected a mapping"):
        KnowledgeMemory.load(copy)
    with pytest.raises(KnowledgeError, match="not found"):
        KnowledgeMemory.load(tmp_path / "missing")


def test_knowledge_tools_through_the_registry() -> None:
    ctx = ToolContext(np.arange(300, dtype=float), 100, 200, dataset="WSD", domain="WebService")
    registry = default_registry()
    domain = registry.call(ctx, ToolCall("get_domain_knowledge", {}))
    assert domain.ok and domain.output["dataset"] == "WSD" and domain.output["domain"] == "WebService"
    definition = registry.call(ctx, ToolCall("get_anomaly_type_definition", {"type_name": "level shift"}))
    assert definition.ok and definition.output["name"] == "level-shift"
    bad_type = registry.call(ctx, ToolCall("get_anomaly_type_definition", {"type_name": "comet"}))
    assert "unknown anomaly type" in bad_type.error
    semantics = registry.call(ctx, ToolCall("get_tool_semantics", {"tool_name": "global_value_zscore"}))
    assert semantics.ok and semantics.output["score"] == "value_z"
    assert registry.call(ctx, ToolCall("get_tool_semantics", {"tool_name": "x"})).error
    assert registry.call(ctx, ToolCall("get_tool_semantics", {"tool_name": 3})).error


def test_candidate_thresholds_come_from_the_dataset_entry(memory: KnowledgeMemory) -> None:
    from anomamind.tools.localization import DEFAULT_THRESHOLDS, candidate_thresholds

    ctx = ToolContext(np.arange(300, dtype=float), 100, 200, dataset="YAHOO")
    known = memory.for_series("YAHOO").thresholds
    expected = {k: known.get(k, v) for k, v in DEFAULT_THRESHOLDS.items()}
    assert candidate_thresholds(ctx) == expected


def test_heuristic_detector_settings_overlay_the_generic_ones(memory: KnowledgeMemory) -> None:
    generic = memory.detector_settings(None)
    assert generic == memory.detector_settings("unknown-data") and "how" not in generic
    yahoo = memory.detector_settings("yahoo_s5")  # aliases and case work as for for_series
    assert yahoo["thresholds"] != generic["thresholds"] and yahoo["hysteresis"] == 1.0
    tods = memory.detector_settings("TODS")
    assert "hysteresis" in tods and tods["max_intervals"] == 10
    tods["thresholds"]["level"] = -1.0  # a fresh copy: the memory is untouched
    assert memory.detector_settings("TODS")["thresholds"]["level"] == 11.0


def test_every_dataset_file_says_how_its_detector_settings_were_chosen() -> None:
    for path in sorted(KNOWLEDGE_DIR.glob("*.yaml")):
        if path.name in ("taxonomy.yaml", "tools.yaml"):
            continue
        section = yaml.safe_load(path.read_text())["heuristic_detector"]
        assert "dev split only" in section["how"] and "tsbad/dev" in section["how"], path.name
        assert set(section["thresholds"]) == {"spike", "jump", "level", "seasonal", "global"}, path.name
