"""A slow link for bootstrap tests: forwards its stdin to a child in chunks of CHUNK bytes.

Usage: slow_link.py CHUNK COMMAND...   (stdout and stderr of the child pass straight through)
"""

import os
import subprocess
import sys
import time

chunk = int(sys.argv[1])
child = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, bufsize=0)
sent = 0
while True:
    data = os.read(0, chunk)
    if not data:
        break
    child.stdin.write(data)
    sent += 1
    if sent % 64 == 0:
        time.sleep(0.001)  # let the child read, so it really sees small fragments
child.stdin.close()
sys.exit(child.wait())
