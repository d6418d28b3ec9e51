"""Rule synthetic-004: flags a window of log lines when ALL conditions below hold (proposed by the offline search)."""

import re

# The header fields of a synthetic line; the message is what follows them.
MESSAGE = re.compile(r"^(?P<epoch>\d{9,}(?:\.\d+)?) (?P<node>\S+) (?P<level>[A-Z]+) (?P<component>[^:\s]+): ?(?P<content>.*)$")
# P3: template "<*> query on <*> took <*> ms" (a whole message)
P3 = re.compile(r"^\s*\S+\s+query\s+on\s+\S+\s+took\s+\S+\s+ms\s*$")
# P4: template "<*> cache <*> for key <*>" (a whole message)
P4 = re.compile(r"^\s*\S+\s+cache\s+\S+\s+for\s+key\s+\S+\s*$")


def message(line):
    """The message part of a raw line (the whole line when it has no header)."""
    match = MESSAGE.match(line)
    return match.group("content") if match else line


def detect(lines: list[str]) -> bool:
    """True when this window of raw log lines is anomalous."""
    messages = [message(line) for line in lines]
    # Condition: some line matches P3 (template "<*> query on <*> took <*> ms").
    if not any(P3.search(text) for text in messages):
        return False
    # Condition: no line matches P4 (template "<*> cache <*> for key <*>").
    if any(P4.search(text) for text in messages):
        return False
    return True
