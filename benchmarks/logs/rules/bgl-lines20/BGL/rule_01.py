"""Rule bgl-014: flags a window of log lines when ALL conditions below hold (mutated by the offline search from bgl-003)."""

import re

# The header fields of a bgl line; the message is what follows them.
MESSAGE = re.compile(r"^(?P<epoch>\d+) (?P<date>\d{4}\.\d{2}\.\d{2}) (?P<node>\S+) (?P<time>\d{4}-\d{2}-\d{2}-\d{2}\.\d{2}\.\d{2}\.\d+) (?P<node_repeat>\S+) (?P<type>\S+) (?P<component>\S+) (?P<level>\S+) ?(?P<content>.*)$")
# P56: the word "FATAL"
P56 = re.compile(r"\bFATAL\b")
# The 49 templates of the normal training windows.
KNOWN = [
    re.compile(r"^\s*instruction\s+cache\s+parity\s+error\s+corrected\s*$"),  # template "instruction cache parity error corrected"
    re.compile(r"^\s*\S+\s+double\-hummer\s+alignment\s+exceptions\s*$"),  # template "<*> double-hummer alignment exceptions"
    re.compile(r"^\s*CE\s+sym\s+\S+\s+at\s+\S*,\s+mask\s+\S+\s*$"),  # template "CE sym <*> at <HEX>, mask <HEX>"
    re.compile(r"^\s*generating\s+\S+\s*$"),  # template "generating <*>"
    re.compile(r"^\s*force\s+load/store\s+alignment\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.0\s*$"),  # template "force load/store alignment...............0"
    re.compile(r"^\s*ciod:\s+cpu\s+0\s+at\s+treeaddr\s+438\s+sent\s+unrecognized\s+message\s+\S+\s*$"),  # template "ciod: cpu 0 at treeaddr 438 sent unrecognized message <HEX>"
    re.compile(r"^\s*ciod:\s+LOGIN\s+chdir\(/p/gb2/glosli/8M_5000K/t800\)\s+failed:\s+No\s+such\s+file\s+or\s+directory\s*$"),  # template "ciod: LOGIN chdir(/p/gb2/glosli/8M_5000K/t800) failed: No such file or directory"
    re.compile(r"^\s*1\s+ddr\s+errors\(s\)\s+detected\s+and\s+corrected\s+on\s+rank\s+0,\s+symbol\s+\S+\s+bit\s+\S+\s*$"),  # template "1 ddr errors(s) detected and corrected on rank 0, symbol <*> bit <*>"
    re.compile(r"^\s*instruction\s+address:\s+\S+\s*$"),  # template "instruction address: <HEX>"
    re.compile(r"^\s*machine\s+check:\s+i\-fetch\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.0\s*$"),  # template "machine check: i-fetch......................0"
    re.compile(r"^\s*program\s+interrupt:\s+\S+\s+\S+\s*$"),  # template "program interrupt: <*> <*>"
    re.compile(r"^\s*exception\s+syndrome\s+register:\s+\S+\s*$"),  # template "exception syndrome register: <HEX>"
    re.compile(r"^\s*data\s+store\s+interrupt\s+caused\s+by\s+\S+\s*$"),  # template "data store interrupt caused by <*>"
    re.compile(r"^\s*store\s+operation\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.1\s*$"),  # template "store operation.............................1"
    re.compile(r"^\s*machine\s+state\s+register:\s+\S+\s*$"),  # template "machine state register: <HEX>"
    re.compile(r"^\s*problem\s+state\s+\(0=sup,1=usr\)\.\.\.\.\.\.\.0\s*$"),  # template "problem state (0=sup,1=usr).......0"
    re.compile(r"^\s*floating\s+point\s+instr\.\s+enabled\.\.\.\.\.1\s*$"),  # template "floating point instr. enabled.....1"
    re.compile(r"^\s*auxiliary\s+processor\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.0\s*$"),  # template "auxiliary processor.........................0"
    re.compile(r"^\s*machine\s+check\s+enable\.\.\.\.\.\.\.\.\.\.\.\.\.\.0\s*$"),  # template "machine check enable..............0"
    re.compile(r"^\s*floating\s+pt\s+ex\s+mode\s+\S+\s+enable\.\.\.\.\.\.0\s*$"),  # template "floating pt ex mode <*> enable......0"
    re.compile(r"^\s*debug\s+interrupt\s+enable\.\.\.\.\.\.\.\.\.\.\.\.0\s*$"),  # template "debug interrupt enable............0"
    re.compile(r"^\s*byte\s+ordering\s+exception\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.0\s*$"),  # template "byte ordering exception.....................0"
    re.compile(r"^\s*data\s+address\s+space\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.0\s*$"),  # template "data address space................0"
    re.compile(r"^\s*core\s+configuration\s+register:\s+\S+\s*$"),  # template "core configuration register: <HEX>"
    re.compile(r"^\s*program\s+interrupt:\s+fp\s+cr\s+update\.\.\.\.\.\.\.\.\.\.\.\.\.0\s*$"),  # template "program interrupt: fp cr update.............0"
    re.compile(r"^\s*guaranteed\s+\S+\s+cache\s+block\s+\S+\s*$"),  # template "guaranteed <*> cache block <*>"
    re.compile(r"^\s*program\s+interrupt:\s+fp\s+cr\s+field\s+\.\.\.\.\.\.\.\.\.\.\.\.\.0\s*$"),  # template "program interrupt: fp cr field .............0"
    re.compile(r"^\s*icache\s+prefetch\s+\S+\s*$"),  # template "icache prefetch <*>"
    re.compile(r"^\s*wait\s+state\s+enable\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.0\s*$"),  # template "wait state enable.................0"
    re.compile(r"^\s*critical\s+input\s+interrupt\s+enable\.\.\.0\s*$"),  # template "critical input interrupt enable...0"
    re.compile(r"^\s*special\s+purpose\s+registers:\s*$"),  # template "special purpose registers:"
    re.compile(r"^\s*lr:00004ed0\s+cr:28244842\s+xer:20000002\s+ctr:00086000\s*$"),  # template "lr:00004ed0 cr:28244842 xer:20000002 ctr:00086000"
    re.compile(r"^\s*rts\s+internal\s+error\s*$"),  # template "rts internal error"
    re.compile(r"^\s*debug\s+wait\s+enable\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.0\s*$"),  # template "debug wait enable.................0"
    re.compile(r"^\s*instruction\s+address\s+space\.\.\.\.\.\.\.\.\.0\s*$"),  # template "instruction address space.........0"
    re.compile(r"^\s*disable\s+store\s+gathering\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.\.0\s*$"),  # template "disable store gathering..................0"
    re.compile(r"^\s*total\s+of\s+\S+\s+ddr\s+error\(s\)\s+detected\s+and\s+corrected\s*$"),  # template "total of <*> ddr error(s) detected and corrected"
    re.compile(r"^\s*ciod:\s+Error\s+loading\s+\S+\s+invalid\s+or\s+missing\s+program\s+image,\s+No\s+such\s+file\s+or\s+directory\s*$"),  # template "ciod: Error loading <*> invalid or missing program image, No such file or directory"
    re.compile(r"^\s*ciod:\s+Error\s+creating\s+node\s+map\s+from\s+file\s+\S+\s+\S+\s+\S+\s+\S+\s*$"),  # template "ciod: Error creating node map from file <*> <*> <*> <*>"
    re.compile(r"^\s*program\s+interrupt\s*$"),  # template "program interrupt"
    re.compile(r"^\s*Node\s+card\s+is\s+not\s+fully\s+functional\s*$"),  # template "Node card is not fully functional"
    re.compile(r"^\s*Ido\s+chip\s+status\s+changed:\s+FF:F2:9F:16:E2:23:00:0D:60:E9:1D:DC\s+ip=\S*\s+v=9\s+t=4\s+status=M\s+Fri\s+Jul\s+01\s+08:16:53\s+PDT\s+2005\s*$"),  # template "Ido chip status changed: FF:F2:9F:16:E2:23:00:0D:60:E9:1D:DC ip=<IP> v=9 t=4 status=M Fri Jul 01 08:16:53 PDT 2005"
    re.compile(r"^\s*Can\s+not\s+get\s+assembly\s+information\s+for\s+node\s+card\s*$"),  # template "Can not get assembly information for node card"
    re.compile(r"^\s*ciod:\s+Missing\s+or\s+invalid\s+fields\s+on\s+line\s+1\s+of\s+node\s+map\s+file\s+/home/auselton/bgl/64mps\.sequential\.mapfile\s*$"),  # template "ciod: Missing or invalid fields on line 1 of node map file /home/auselton/bgl/64mps.sequential.mapfile"
    re.compile(r"^\s*1\s+torus\s+receiver\s+z\+\s+input\s+pipe\s+error\(s\)\s+\(dcr\s+\S*\)\s+detected\s+and\s+corrected\s*$"),  # template "1 torus receiver z+ input pipe error(s) (dcr <HEX>) detected and corrected"
    re.compile(r"^\s*ciod:\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+at\s+line\s+\S+\s+of\s+node\s+map\s+file\s+\S+\s*$"),  # template "ciod: <*> <*> <*> <*> <*> <*> <*> at line <*> of node map file <*>"
    re.compile(r"^\s*ciod:\s+Error\s+creating\s+node\s+map\s+from\s+file\s+/home/pakin1/sweep3d\-2\.2b/results/random1\-8x32x32x2\.map:\s+Permission\s+denied\s*$"),  # template "ciod: Error creating node map from file /home/pakin1/sweep3d-2.2b/results/random1-8x32x32x2.map: Permission denied"
    re.compile(r"^\s*\S+\s+floating\s+point\s+alignment\s+exceptions\s*$"),  # template "<*> floating point alignment exceptions"
    re.compile(r"^\s*New\s+ido\s+chip\s+inserted\s+into\s+the\s+database:\s+FF:F2:9F:15:1F:72:00:0D:60:EA:E0:8D\s+ip=\S*\s+v=9\s+t=2\s*$"),  # template "New ido chip inserted into the database: FF:F2:9F:15:1F:72:00:0D:60:EA:E0:8D ip=<IP> v=9 t=2"
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
    # Condition: at least 4 lines match P56 (the word "FATAL").
    if sum(1 for text in lines if P56.search(text)) < 4:
        return False
    return True
