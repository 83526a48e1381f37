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


def fail_always(message):
    raise ValueError(message)


def nap(seconds):
    time.sleep(seconds)
    return seconds
