"""Functions the group and queue tests run on the far side of their tunnels (no tests here).

The agents import this module through the tunnel's import hook, so it uses only the standard
library. Remote behaviour that must differ per host is keyed by the agent's pid, which the
controller reads from ``tunnel.remote_info["pid"]``.
"""

import os
import sys
import time


def act(actions):
    """Do what ``actions[pid]`` says: ("return", value), ("raise", text) or ("sleep", seconds)."""
    kind, arg = actions.get(os.getpid(), ("return", None))
    if kind == "raise":
        raise ValueError(arg)
    if kind == "sleep":
        time.sleep(arg)
        return "slept"
    return arg


def pid_in(pids):
    """A filter predicate: true on the agents whose pid is in ``pids``."""
    return os.getpid() in pids


def echo(*args, **kwargs):
    return [list(args), kwargs]


def fail(message):
    raise RuntimeError(message)


def stamp(label, seconds):
    """Sleep ``seconds``; return (label, pid, start, end) in wall-clock (time.time) seconds."""
    start = time.time()
    time.sleep(seconds)
    return [label, os.getpid(), start, time.time()]


def shout(text):
    """Write ``text`` to stdout and stderr, one line each."""
    print("out:" + text)
    sys.stdout.flush()
    sys.stderr.write("err:" + text + "\n")
    sys.stderr.flush()
    return text


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def remove(path):
    os.unlink(path)
