"""Functions the core tests call remotely. Stdlib only and valid on Python 3.6: every remote
Python imports this file from the controller through the import hook."""

import os
import sys
import time


def version():
    return tuple(sys.version_info[:3])


def echo(*args, **kwargs):
    return [list(args), kwargs]


def boom(message):
    raise RuntimeError(message)


def noisy(lines):
    for i in range(lines):
        print(f"out line {i}")
        sys.stderr.write(f"err line {i}\n")
    return lines


def write_fd(fd, data):
    """Write straight to a file descriptor, bypassing the relayed sys.stdout/sys.stderr."""
    os.write(fd, data)
    return len(data)


def flood_stderr(nbytes):
    chunk = b"x" * 1023 + b"\n"
    for _ in range(nbytes // len(chunk)):
        os.write(2, chunk)
    return nbytes


def sleep(seconds):
    time.sleep(seconds)
    return seconds


def sleep_then_report(seconds):
    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        return "interrupted"
    return "slept"


def die(status):
    os._exit(status)


def unencodable():
    return object()


def import_and_sum(name):
    import importlib

    return importlib.import_module(name).total()


def read_resource(package, resource):
    import pkgutil

    return pkgutil.get_data(package, resource)


def read_via_loader(module_name, path):
    import importlib

    module = importlib.import_module(module_name)
    return module.__loader__.get_data(path)


def module_file(name):
    import importlib

    return importlib.import_module(name).__file__


def getpid():
    return os.getpid()


def uid():
    return os.getuid()


def nested_call(depth_to_go):
    """Open a Local tunnel from the remote side and recurse through it."""
    from chopsticks_nb.tunnel import Local

    with Local(f"level-{depth_to_go}") as tunnel:
        if depth_to_go <= 1:
            return tunnel.call(getpid)
        return tunnel.call(nested_call, depth_to_go - 1)


def forever_recursive():
    from chopsticks_nb.tunnel import Local

    with Local("again") as tunnel:
        return tunnel.call(forever_recursive)


def sudo_uid(user):
    """Open a Sudo tunnel from the remote side and return the uid it runs as."""
    from chopsticks_nb.tunnel import Sudo

    with Sudo(user) as inner:
        return inner.call(uid)


def import_missing_as_reader_thread():
    """Import a module nobody has while posing as the agent's reader thread: report whether
    the import hook asked the controller (it must not: only that thread could read the answer)."""
    import threading

    finder = next(f for f in sys.meta_path if type(f).__name__ == "_RemoteModuleFinder")
    saved = finder.agent.reader
    finder.agent.reader = threading.current_thread()
    before = finder.agent.next_request
    try:
        __import__("module_that_is_nowhere_at_all")
    except ImportError:
        pass
    finally:
        finder.agent.reader = saved
    return "asked" if finder.agent.next_request != before else "did not ask"


def agent_module_state():
    """What stage 1 left in the agent's module: a MARKER from a test's code, the source kept."""
    agent = sys.modules["chopsticks_nb._agent"]
    return {
        "marker": getattr(agent, "MARKER", None),
        "source": agent.SOURCE is not None,
        "source_zlib": agent.SOURCE_ZLIB is not None,
        "argv": list(sys.argv),
    }


def nested_agent_module_state():
    """agent_module_state of an agent started by this one."""
    from chopsticks_nb.tunnel import Local

    with Local("nested") as tunnel:
        return tunnel.call(agent_module_state)
