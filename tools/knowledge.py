"""Knowledge memory: anomaly taxonomy, per-dataset knowledge, tool semantics.

Everything is data in ``configs/knowledge/``:

* ``taxonomy.yaml``: one entry per name of :data:`anomamind.types.ANOMALY_TYPES`
  (definition, the evidence that reveals it);
* ``tools.yaml``: what each tool's output means and its usual threshold;
* one file per dataset (``yahoo.yaml``, ``tods.yaml``, ``iops.yaml``, ``wsd.yaml``) plus
  ``generic.yaml`` for unknown data: description, labelling conventions, typical anomaly
  types, per-domain notes, and thresholds derived from the dev split by
  ``scripts/derive_knowledge.py`` (each file says how); and ``heuristic_detector``, the
  heuristic agent's detection settings tuned on the dev split (its ``how`` says how),
  read through :meth:`KnowledgeMemory.detector_settings`. generic.yaml also holds
  ``label_free_detector``, the settings for datasets without an entry of their own
  (thresholds calibrated on each series, labelling convention from its period).

A series' knowledge is chosen by its ``dataset`` field (then by ``domain``), never by a
substring of a file path; unknown data get the generic entry. A user's own entries (same
schema) are added with ``KnowledgeMemory.load(dir, extra_files)``. The knowledge tools at
the end of the module expose this memory to the model (group "knowledge_memory").
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from anomamind.paths import CONFIG_DIR
from anomamind.tools.context import ToolArgumentError, ToolContext
from anomamind.types import ANOMALY_TYPES

KNOWLEDGE_DIR: Path = CONFIG_DIR / "knowledge"
_RESERVED_FILES = {"taxonomy.yaml", "tools.yaml"}


class KnowledgeError(ValueError):
    """A knowledge file that is missing, malformed or inconsistent with the taxonomy."""


def _read(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise KnowledgeError(f"knowledge file not found: {path}")
    try:
        # libyaml's loader when available: the pure-Python one takes ~1 s for these files
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise KnowledgeError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise KnowledgeError(f"{path}: expected a mapping at the top level")
    return data


def _key(name: str) -> str:
    return re.sub(r"[\s_/]+", "-", str(name).strip().lower())


@dataclass
class AnomalyType:
    """One anomaly type of the taxonomy."""

    name: str
    definition: str
    evidence: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)


class AnomalyTaxonomy:
    """The anomaly types of :data:`ANOMALY_TYPES` with definitions, loaded from YAML."""

    def __init__(self, types: dict[str, AnomalyType]) -> None:
        self.types = types

    @classmethod
    def load(cls, path: Path) -> "AnomalyTaxonomy":
        data = _read(path).get("types")
        if not isinstance(data, dict):
            raise KnowledgeError(f"{path}: expected a 'types' mapping")
        names = set(data)
        if names != set(ANOMALY_TYPES):
            raise KnowledgeError(
                f"{path}: types must be exactly {list(ANOMALY_TYPES)}; "
                f"missing {sorted(set(ANOMALY_TYPES) - names)}, unknown {sorted(names - set(ANOMALY_TYPES))}"
            )
        types = {}
        for name in ANOMALY_TYPES:
            entry = data[name]
            if not isinstance(entry, dict) or not entry.get("definition"):
                raise KnowledgeError(f"{path}: type {name} needs a definition")
            types[name] = AnomalyType(
                name, str(entry["definition"]).strip(), list(entry.get("evidence", [])), list(entry.get("tools", []))
            )
        return cls(types)

    def names(self) -> list[str]:
        return list(self.types)

    def get(self, name: str) -> AnomalyType | None:
        """The type called ``name`` (case, spaces and underscores ignored), or None."""
        return self.types.get(_key(name))


@dataclass
class DatasetKnowledge:
    """What is known about one dataset (or the generic entry), for one domain."""

    key: str
    dataset: str
    description: str
    labelling: list[str]
    typical_types: list[str]
    thresholds: dict[str, float]
    thresholds_how: str
    domain: str | None = None
    domain_note: str | None = None
    notes: list[str] = field(default_factory=list)

    def get(self, key: str) -> Any:
        """One field by name (KeyError naming the fields when unknown)."""
        data = self.to_dict()
        if key not in data:
            raise KeyError(f"no knowledge field {key!r}; fields: {', '.join(data)}")
        return data[key]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class KnowledgeMemory:
    """Taxonomy, dataset knowledge and tool semantics, with retrieval by key and by type."""

    def __init__(self, taxonomy: AnomalyTaxonomy, datasets: dict[str, dict[str, Any]], tools: dict[str, dict[str, Any]]) -> None:
        self.taxonomy = taxonomy
        self._datasets = datasets
        self._tools = tools
        if "generic" not in datasets:
            raise KnowledgeError("knowledge needs a generic entry (generic.yaml)")
        self._selected: dict[tuple[str, str], DatasetKnowledge] = {}
        self._aliases: dict[str, str] = {}
        for key, entry in datasets.items():
            for alias in [entry["dataset"], *entry.get("aliases", [])]:
                self._aliases[_key(alias)] = key

    @classmethod
    def load(cls, config_dir: Path | str = KNOWLEDGE_DIR, extra_files: Iterable[Path | str] = ()) -> "KnowledgeMemory":
        """Read every knowledge file of ``config_dir``, then ``extra_files`` (a user's own
        dataset entries, same schema; one whose dataset name matches an entry of the
        directory replaces it); errors name the file."""
        config_dir = Path(config_dir)
        if not config_dir.is_dir():
            raise KnowledgeError(f"knowledge directory not found: {config_dir}")
        taxonomy = AnomalyTaxonomy.load(config_dir / "taxonomy.yaml")
        tools = _read(config_dir / "tools.yaml").get("tools") or {}
        datasets: dict[str, dict[str, Any]] = {}
        for path in sorted(config_dir.glob("*.yaml")):
            if path.name not in _RESERVED_FILES:
                datasets[path.stem] = read_dataset_entry(path)
        for path in map(Path, extra_files):
            entry = read_dataset_entry(path)
            replaced = [k for k, e in datasets.items() if _key(e["dataset"]) == _key(entry["dataset"])]
            for key in replaced:
                del datasets[key]
            datasets[replaced[0] if replaced else path.stem] = entry
        return cls(taxonomy, datasets, tools)

    def datasets(self) -> list[str]:
        return list(self._datasets)

    def knows(self, dataset: str | None) -> bool:
        """True when ``dataset`` (name or alias, any case) has an entry of its own."""
        return bool(dataset) and self._aliases.get(_key(dataset)) not in (None, "generic")

    def for_series(self, dataset: str | None, domain: str | None = None) -> DatasetKnowledge:
        """Knowledge for a series' ``dataset`` and ``domain`` fields (generic when unknown).

        A known dataset (name or alias, any case) gives its entry, with the note for
        ``domain`` when the entry has one; anything else gets the generic entry. Results
        are cached and shared: treat them as read-only.
        """
        cache_key = (_key(dataset or ""), _key(domain or ""))
        if cache_key not in self._selected:
            self._selected[cache_key] = self._select(dataset, domain)
        return self._selected[cache_key]

    def _select(self, dataset: str | None, domain: str | None) -> DatasetKnowledge:
        key = self._aliases.get(_key(dataset or ""))
        entry = self._datasets[key or "generic"]
        domains = {_key(k): (k, v) for k, v in (entry.get("domains") or {}).items()}
        domain_name, domain_note = domains.get(_key(domain or ""), (None, None))
        return DatasetKnowledge(
            key=key or "generic",
            dataset=entry["dataset"],
            description=str(entry["description"]).strip(),
            labelling=list(entry["labelling"]),
            typical_types=list(entry["typical_types"]),
            thresholds={k: float(v) for k, v in (entry.get("thresholds") or {}).items()},
            thresholds_how=str(entry.get("thresholds_how", "")).strip(),
            domain=domain_name,
            domain_note=domain_note,
            notes=list(entry.get("notes", [])),
        )

    def detector_settings(self, dataset: str | None, section: str = "heuristic_detector") -> dict[str, Any]:
        """A programmatic detector's settings for ``dataset``: the generic entry's
        ``section`` overlaid (key by key, shallow) with the dataset's own (name or alias,
        any case; unknown or None: the generic section alone), without its ``how`` text.
        A fresh copy: the caller may change it."""
        generic = self._datasets["generic"].get(section) or {}
        key = self._aliases.get(_key(dataset or "")) if dataset else None
        own = (self._datasets[key].get(section) or {}) if key else {}
        for where, data in (("generic", generic), (key, own)):
            if not isinstance(data, dict):
                raise KnowledgeError(f"{where}.yaml: {section} must be a mapping")
        merged = {k: v for k, v in {**generic, **own}.items() if k != "how"}
        return copy.deepcopy(merged)

    def tool_semantics(self, tool_name: str) -> dict[str, Any]:
        """What a tool's output means and its usual threshold (KeyError when undocumented)."""
        if tool_name not in self._tools:
            raise KeyError(f"no semantics for tool {tool_name!r}; documented: {', '.join(self._tools)}")
        return {"tool": tool_name, **self._tools[tool_name]}

    def by_type(self, type_name: str) -> dict[str, Any]:
        """A type's definition, evidence and tools, and the datasets where it is typical."""
        found = self.taxonomy.get(type_name)
        if found is None:
            raise KeyError(f"unknown anomaly type {type_name!r}; types: {', '.join(self.taxonomy.names())}")
        typical_in = [e["dataset"] for k, e in self._datasets.items() if found.name in e["typical_types"] and k != "generic"]
        return {**asdict(found), "typical_in": typical_in}

    def get(self, key: str) -> Any:
        """Retrieve by key: ``type:<name>``, ``tool:<name>``, ``dataset:<name>``, or a bare name
        of any of them (types first, then tools, then datasets)."""
        kind, _, name = key.partition(":") if ":" in key else ("", "", key)
        if kind in ("", "type") and self.taxonomy.get(name):
            return self.by_type(name)
        if kind in ("", "tool") and name in self._tools:
            return self.tool_semantics(name)
        if kind in ("", "dataset") and _key(name) in self._aliases:
            return self.for_series(name).to_dict()
        raise KeyError(f"nothing in the knowledge memory under {key!r}")


def read_dataset_entry(path: Path) -> dict[str, Any]:
    """One dataset file's mapping, checked for the required fields and known types."""
    entry = _read(path)
    for required in ("dataset", "description", "labelling", "typical_types"):
        if required not in entry:
            raise KnowledgeError(f"{path}: missing field {required!r}")
    unknown = [t for t in entry["typical_types"] if t not in ANOMALY_TYPES]
    if unknown:
        raise KnowledgeError(f"{path}: typical_types {unknown} are not in the taxonomy")
    return entry


@lru_cache(maxsize=4)
def _cached_memory(config_dir: str) -> KnowledgeMemory:
    return KnowledgeMemory.load(config_dir)


def default_memory() -> KnowledgeMemory:
    """The repository's knowledge memory, loaded once."""
    return _cached_memory(str(KNOWLEDGE_DIR))


# --- tools (group "knowledge_memory") --------------------------------------------------


def get_domain_knowledge(ctx: ToolContext) -> dict[str, Any]:
    """Knowledge about this series' dataset and domain: what the data are, how anomalies
    were labelled, which anomaly types are typical, and typical tool thresholds derived
    from the development split (score name -> threshold). Unknown data get generic advice.
    """
    knowledge = default_memory().for_series(ctx.dataset, ctx.domain)
    out = knowledge.to_dict()  # a fresh copy: the cached entry stays untouched
    out["summary"] = (
        f"{knowledge.dataset}: {knowledge.description.split('.')[0]}. "
        f"Typical types: {', '.join(knowledge.typical_types)}."
    )
    return out


def get_anomaly_type_definition(ctx: ToolContext, *, type_name: str) -> dict[str, Any]:
    """Definition of an anomaly type of the taxonomy, the evidence that reveals it, the
    tools that measure that evidence and the datasets where it is typical.

    Args:
        type_name: one of point-global, point-contextual, level-shift, trend-change,
            seasonal-deviation, shapelet-deviation, variance-change, flat-missing, other.
    """
    try:
        entry = default_memory().by_type(type_name)
    except KeyError as err:
        raise ToolArgumentError(str(err.args[0])) from err
    entry["summary"] = f"{entry['name']}: {entry['definition']}"
    return entry


def get_tool_semantics(ctx: ToolContext, *, tool_name: str) -> dict[str, Any]:
    """What a tool's output means, its usual threshold and, for this series' dataset, the
    thresholds derived from the development split.

    Args:
        tool_name: name of a registered tool.
    """
    memory = default_memory()
    try:
        entry = memory.tool_semantics(tool_name)
    except KeyError as err:
        raise ToolArgumentError(str(err.args[0])) from err
    score = entry.get("score")
    knowledge = memory.for_series(ctx.dataset, ctx.domain)
    if score and score in knowledge.thresholds:
        entry["dataset_threshold"] = {"dataset": knowledge.dataset, "threshold": knowledge.thresholds[score]}
    entry["summary"] = f"{tool_name}: {entry.get('meaning', '')}".strip()
    return entry
