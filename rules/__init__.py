"""Learned detection rules in the style of Argos: commented Python rules over windows,
searched offline or written by an LLM, checked and run in a sandbox (see docs/rules.md).

Modules: rule (format, rule sets), policy + sandbox + sandbox_worker (static check and
sandboxed execution), features (what rules compute), data (split, concatenated arrays),
scoring (macro F1, AND/OR), proposer + proposer_offline + proposer_llm, loop (training),
train (per-dataset runs), detector (``rules:PATH``), bench (tables), cli.
"""
