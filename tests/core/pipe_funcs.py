"""Functions the pipe-ownership tests (test_agent_pipe.py) call remotely. Stdlib only and valid
on Python 3.6: every remote Python imports this file from the controller."""

import importlib
import os
import sys
import threading
import time

#: What record() saw, in the order the agent ran the calls.
RECORD = []


def record(i):
    RECORD.append(i)
    return i


def recorded():
    return list(RECORD)


def sleep_then_record(seconds, i):
    time.sleep(seconds)
    return record(i)


def wait_or_note(seconds, busy):
    """Say "started", then sleep (or, ``busy``, spin) for ``seconds``; note in RECORD whether
    a cancel interrupted it."""
    print("started")
    try:
        if busy:
            spin(seconds)
        else:
            time.sleep(seconds)
    except KeyboardInterrupt:
        RECORD.append("interrupted")
        raise
    RECORD.append("finished")


def spin(seconds):
    """Pure Python for ``seconds``: the GIL is only given up at the switch interval."""
    deadline = time.time() + seconds
    turns = 0
    while time.time() < deadline:
        turns += 1
    return turns


def wait_for_file(path, limit):
    """Block until ``path`` exists (the controller puts it meanwhile); return its bytes."""
    deadline = time.time() + limit
    while not os.path.exists(path):
        if time.time() > deadline:
            raise RuntimeError(f"{path} never arrived")
        time.sleep(0.01)
    with open(path, "rb") as f:
        return f.read()


def value_of(name):
    """Import ``name`` (from the controller); its VALUE."""
    return importlib.import_module(name).VALUE


def value_of_after_file(name, path, limit):
    """Import ``name`` once ``path`` exists; its VALUE."""
    wait_for_file(path, limit)
    return value_of(name)


def _agent():
    finder = next(f for f in sys.meta_path if type(f).__name__ == "_RemoteModuleFinder")
    return finder.agent


def import_once_idle(name):
    """Start a thread that imports ``name`` from the controller once no call runs (so that the
    main thread reads the answer) and prints the value found and who held the pipe."""
    agent = _agent()

    def run():
        # Once the call has ended the main thread takes the pipe back from the reader thread,
        # a moment later: wait for both, so that the main thread is the one that reads.
        while agent.current or agent.pipe != 0:
            time.sleep(0.001)
        pipe = agent.pipe
        print(f"imported {name}={importlib.import_module(name).VALUE!r}, pipe {pipe}")

    thread = threading.Thread(target=run, name="importer")
    thread.daemon = True
    thread.start()
    return agent.main != thread.ident
