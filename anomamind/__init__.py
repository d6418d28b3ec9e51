"""AnomaMind: an agentic RL training stack for time-series anomaly detection.

Subpackages live in top-level folders of the repository (see pyproject's package-dir):
``anomamind.tools`` (tools/), ``anomamind.agents`` (agents/), ``anomamind.envs`` (envs/),
``anomamind.rl`` (rl/), ``anomamind.eval`` (eval/), ``anomamind.rules`` (rules/).
"""

__version__ = "0.1.0"
