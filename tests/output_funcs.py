"""Remote functions for the output tests of every layer: what hosts print (the remote imports
this module by name: tests/ is on sys.path)."""

import sys


def say(text, stderr=False, end="\n"):
    print(text, end=end, file=sys.stderr if stderr else sys.stdout)
    return len(text)


def lines(count, prefix="line"):
    out = sys.stdout
    for i in range(count):
        out.write(f"{prefix} {i}\n")
    return count


def progress_bar(total_bytes, width=60):
    """A progress bar redrawn with \\r and never a newline: ``total_bytes`` of it."""
    step = "\r" + "#" * (width - 12) + " %10d"
    sent = 0
    out = sys.stdout
    while sent < total_bytes:
        chunk = "".join(step % (sent + i) for i in range(1000))
        out.write(chunk)
        sent += len(chunk)
    out.flush()
    return sent
