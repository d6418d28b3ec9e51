"""The framing shared by the two sides of the rule sandbox (no pickle anywhere).

Rule pipes: an 8-byte header length, an 8-byte payload length, a JSON header and raw
bytes. Control socket: a 4-byte length and a JSON object. A message goes out in one
system call where the pipe allows it, so the reader wakes once per message.
"""

from __future__ import annotations

import os
import struct

#: Rule pipes: header length, payload length.
HEADER = struct.Struct("<QQ")
#: Control socket: message length.
CONTROL = struct.Struct("<I")


def byte_view(data) -> memoryview:
    """A flat byte view of ``data`` (bytes, bytearray or a contiguous numpy array)."""
    return memoryview(data).cast("B")


def write_all(fd: int, *parts) -> None:
    """Write ``parts`` to ``fd`` in order, with as few ``writev`` calls as it takes."""
    views = [byte_view(part) for part in parts if len(part)]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
