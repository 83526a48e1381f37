"""What the documentation's examples name but leave to the reader, and probes the compat tests
call remotely. Imported by the remotes from the controller: stdlib and chopsticks_nb only."""

import os
import sys


def install_virtualenv():
    """Stands in for the groups page's ``install_virtualenv``: says where one would go."""
    import venv  # noqa: F401 - the remote's Python can make virtualenvs

    return os.path.join(os.path.expanduser("~"), "venv")


def depth():
    """How deep this agent is: 1 for a tunnel opened by the controller."""
    return sys.modules["chopsticks_nb._agent"].DEPTH


def deepest(set_limit=None, raise_limit=False, stop_at=4):
    """Open a Local tunnel here and recurse through it; the deepest depth reached.

    On each level first set ``chopsticks_nb.DEPTH_LIMIT = set_limit``, or ``+= 1`` it if
    ``raise_limit`` (what the docs warn against); ``stop_at`` keeps this from fork-bombing."""
    import chopsticks_nb
    from chopsticks_nb.errors import DepthLimitExceeded
    from chopsticks_nb.tunnel import Local

    if set_limit is not None:
        chopsticks_nb.DEPTH_LIMIT = set_limit
    if raise_limit:
        chopsticks_nb.DEPTH_LIMIT += 1
    if depth() >= stop_at:
        return depth()
    try:
        with Local("deeper") as tun:
            return tun.call(deepest, set_limit, raise_limit, stop_at)
    except DepthLimitExceeded:
        return depth()


def uid_through_sudo(user):
    """Recursive tunnelling: from this host, a Sudo tunnel to ``user``; the uid it runs as."""
    from chopsticks_nb.tunnel import Sudo

    with Sudo(user) as tun:
        return tun.call(os.getuid)


def chatter(text):
    """print() on the remote side, to stdout and stderr."""
    print(text)
    print(text, file=sys.stderr)
    return text


def new_python():
    """Whether this host's Python is 3.10 or newer (a predicate for Group.filter)."""
    return sys.version_info >= (3, 10)


def needs_new_python():
    """The Python version as a string; raises on a Python older than 3.10."""
    if not new_python():
        raise RuntimeError("this needs Python 3.10, not {}.{}".format(*sys.version_info))
    return "{}.{}".format(*sys.version_info)


def shapes():
    """Values whose types JSON (chopsticks 1.0's results) would have changed or refused."""
    return {1: (1, 2), "bytes": b"\xff", "set": {3}, "frozen": frozenset([4]), "list": [5]}
