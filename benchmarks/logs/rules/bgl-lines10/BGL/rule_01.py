"""Rule bgl-002: flags a window of log lines when ALL conditions below hold (proposed by the offline search)."""

import re

# P67: the word "APP"
P67 = re.compile(r"\bAPP\b")


def detect(lines: list[str]) -> bool:
    """True when this window of raw log lines is anomalous."""
    # Condition: at least 2 lines match P67 (the word "APP").
    if sum(1 for text in lines if P67.search(text)) < 2:
        return False
    return True
