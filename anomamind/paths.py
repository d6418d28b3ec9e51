"""Where the repository's own files are, so code finds configs and prompts from any cwd."""

from __future__ import annotations

from pathlib import Path

#: Repository root (the package is installed editable from a checkout).
REPO_ROOT: Path = Path(__file__).resolve().parent.parent
CONFIG_DIR: Path = REPO_ROOT / "configs"
PROMPT_DIR: Path = REPO_ROOT / "agents" / "prompts"
