"""Rule bgl-001: flags a window of log lines when ALL conditions below hold (proposed by the offline search)."""

import re

# The header fields of a bgl line; the message is what follows them.
MESSAGE = re.compile(r"^(?P<epoch>\d+) (?P<date>\d{4}\.\d{2}\.\d{2}) (?P<node>\S+) (?P<time>\d{4}-\d{2}-\d{2}-\d{2}\.\d{2}\.\d{2}\.\d+) (?P<node_repeat>\S+) (?P<type>\S+) (?P<component>\S+) (?P<level>\S+) ?(?P<content>.*)$")
# P19: template "machine state register: <HEX>" (a whole message)
P19 = re.compile(r"^\s*machine\s+state\s+register:\s+\S+\s*$")
# P56: the word "FATAL"
P56 = re.compile(r"\bFATAL\b")


def message(line):
    """The message part of a raw line (the whole line when it has no header)."""
    match = MESSAGE.match(line)
    return match.group("content") if match else line


def detect(lines: list[str]) -> bool:
    """True when this window of raw log lines is anomalous."""
    messages = [message(line) for line in lines]
    # Condition: at least 2 lines match P56 (the word "FATAL").
    if sum(1 for text in lines if P56.search(text)) < 2:
        return False
    # Condition: no line matches P19 (template "machine state register: <HEX>").
    if any(P19.search(text) for text in messages):
        return False
    return True
