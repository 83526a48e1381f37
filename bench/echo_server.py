"""The physical floor of a round trip: run as ``python -c SOURCE REPLY`` (its text is sent).

Reads length-prefixed messages on stdin into a reused buffer and answers each with its first
4 + REPLY bytes (a call with a big argument returns a small value). Standard library only.
"""

import os
import struct
import sys

reply = int(sys.argv[1])
buf = bytearray(1 << 21)
view = memoryview(buf)
while True:
    got = os.readv(0, [view[:4]])
    if not got:
        break
    n = struct.unpack(">I", buf[:4])[0]
    while got < 4 + n:
        got += os.readv(0, [view[got : 4 + n]])
    os.write(1, bytes(view[: 4 + min(n, reply)]))
