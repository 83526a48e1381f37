"""Functions the result tests run on the far side (stdlib only, valid on Python 3.6)."""

import os
import signal
import time


def die_once(marker):
    """Kill this agent the first time (the connection is lost), then answer."""
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def kill_parent_once(marker):
    """Kill this agent's parent (a relay's agent) the first time, then answer with this agent's
    parent's pid."""
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(60)  # the relay's end ends this agent: its input closes
    return os.getppid()


def fail_always(message):
    raise ValueError(message)


def nap(seconds):
    time.sleep(seconds)
    return seconds
