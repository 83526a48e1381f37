"""Functions the reliability tests run on the remote side (stdlib only: the remote imports this
module from the controller through the import hook)."""

import os
import sys
import threading
import time

_floods = []


def pid_and_parent():
    return [os.getpid(), os.getppid()]


def sleep(seconds):
    time.sleep(seconds)
    return seconds


def flood(total, chunk=1 << 20):
    """Start writing ``total`` bytes to each of stdout (relayed frames) and raw fd 2 (the
    stderr pipe), with bytes that are not UTF-8, on threads; return at once."""
    line = (b"\xff\xfe not utf-8 \xc3\x28 " * 64)[:1023] + b"\n"
    block = line * (chunk // len(line))

    def to_stdout():
        sent = 0
        while sent < total:
            sys.stdout.buffer.write(block)
            sent += len(block)
        sys.stdout.flush()

    def to_stderr():
        sent = 0
        while sent < total:
            os.write(2, block)
            sent += len(block)

    threads = [threading.Thread(target=to_stdout), threading.Thread(target=to_stderr)]
    for thread in threads:
        thread.daemon = True
        thread.start()
    _floods.extend(threads)
    return len(block) * -(-total // len(block))


def flood_done(timeout):
    """Wait for the floods started by :func:`flood`; True when they all finished."""
    deadline = time.time() + timeout
    for thread in _floods:
        thread.join(max(0.0, deadline - time.time()))
    return not any(thread.is_alive() for thread in _floods)
