"""Rule synthetic-002: flags a window of log lines when ALL conditions below hold (proposed by the offline search)."""

import re

# The header fields of a synthetic line; the message is what follows them.
MESSAGE = re.compile(r"^(?P<epoch>\d{9,}(?:\.\d+)?) (?P<node>\S+) (?P<level>[A-Z]+) (?P<component>[^:\s]+): ?(?P<content>.*)$")
# P12: template "<*> token refresh for user <*> from <IP>" (a whole message)
P12 = re.compile(r"^\s*\S+\s+token\s+refresh\s+for\s+user\s+\S+\s+from\s+\S+\s*$")


def message(line):
    """The message part of a raw line (the whole line when it has no header)."""
    match = MESSAGE.match(line)
    return match.group("content") if match else line


def detect(lines: list[str]) -> bool:
    """True when this window of raw log lines is anomalous."""
    messages = [message(line) for line in lines]
    # Condition: at least 2 lines match P12 (template "<*> token refresh for user <*> from <IP>"): a burst of one message.
    if sum(1 for text in messages if P12.search(text)) < 2:
        return False
    return True
