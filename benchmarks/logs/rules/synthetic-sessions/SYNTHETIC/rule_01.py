"""Rule synthetic-001: flags a window of log lines when ALL conditions below hold (proposed by the offline search)."""

import re

# The header fields of a synthetic line; the message is what follows them.
MESSAGE = re.compile(r"^(?P<epoch>\d{9,}(?:\.\d+)?) (?P<node>\S+) (?P<level>[A-Z]+) (?P<component>[^:\s]+): ?(?P<content>.*)$")
# The 10 templates of the normal training windows.
KNOWN = [
    re.compile(r"^\s*session\s+\S+\s+opened\s+for\s+user\s+\S+\s*$"),  # template "session <*> opened for user <*>"
    re.compile(r"^\s*\S+\s+\S+\s+\S+\s+from\s+\S+\s*$"),  # template "<*> <*> <*> from <IP>"
    re.compile(r"^\s*\S+\s+query\s+on\s+\S+\s+took\s+\S+\s+ms\s*$"),  # template "<*> query on <*> took <*> ms"
    re.compile(r"^\s*\S+\s+cache\s+\S+\s+for\s+key\s+\S+\s*$"),  # template "<*> cache <*> for key <*>"
    re.compile(r"^\s*\S+\s+responded\s+\S+\s+in\s+\S+\s+ms\s*$"),  # template "<*> responded <*> in <*> ms"
    re.compile(r"^\s*session\s+\S+\s+closed\s+after\s+\S+\s+s\s*$"),  # template "session <*> closed after <*> s"
    re.compile(r"^\s*\S+\s+insert\s+into\s+\S+\s+took\s+\S+\s+ms\s*$"),  # template "<*> insert into <*> took <*> ms"
    re.compile(r"^\s*\S+\s+commit\s+of\s+\S+\s+rows\s+done\s*$"),  # template "<*> commit of <*> rows done"
    re.compile(r"^\s*\S+\s+invalidated\s+key\s+\S+\s*$"),  # template "<*> invalidated key <*>"
    re.compile(r"^\s*\S+\s+token\s+refresh\s+for\s+user\s+\S+\s+from\s+\S+\s*$"),  # template "<*> token refresh for user <*> from <IP>"
]


def message(line):
    """The message part of a raw line (the whole line when it has no header)."""
    match = MESSAGE.match(line)
    return match.group("content") if match else line


def detect(lines: list[str]) -> bool:
    """True when this window of raw log lines is anomalous."""
    messages = [message(line) for line in lines]
    # Condition: some line fits none of the known templates (a template never seen in normal operation).
    if all(any(p.search(text) for p in KNOWN) for text in messages):
        return False
    return True
