"""Remote functions that tell one agent from another and report what interrupted it. Stdlib
only and valid on Python 3.6, like remote_funcs: remotes import this file through the hook."""

import os
import time

#: this agent's identity, made on first use; a new agent (after a reconnect) makes a new one
_TOKEN = []
#: what each cancelled call of sleep_noting saw, in this agent
_NOTES = []


def agent_token():
    if not _TOKEN:
        _TOKEN.append(os.urandom(8).hex())
    return _TOKEN[0]


def sleep_noting(seconds):
    """Sleep; if the sleep is interrupted, note it for notes() before passing it on."""
    try:
        time.sleep(seconds)
    except BaseException as exc:
        _NOTES.append(type(exc).__name__)
        raise
    _NOTES.append("slept")
    return seconds


def notes():
    return list(_NOTES)
