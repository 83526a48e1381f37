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


def print_slowly(count, pause):
    """Print ``count`` numbered lines ``pause`` seconds apart, each sent on its own."""
    for i in range(count):
        print(f"line {i}")
        sys.stdout.flush()
        time.sleep(pause)
    return count


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


def say_then_sleep(seconds):
    """Print "started" (a test waits for it: the call is running), then sleep."""
    print("started", flush=True)
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


def import_again(name):
    """Forget which imports failed (importlib.invalidate_caches()), then import_and_sum."""
    import importlib

    importlib.invalidate_caches()
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
    finder.agent.reader = threading.get_ident()
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
        "zlib": "zlib" in sys.modules,  # only to decompress the source, to compile it there
    }


def nested_agent_module_state():
    """agent_module_state of an agent started by this one."""
    from chopsticks_nb.tunnel import Local

    with Local("nested") as tunnel:
        return tunnel.call(agent_module_state)


def loaded(names):
    """Which of ``names`` this process has imported."""
    return sorted(name for name in names if name in sys.modules)


def part_file_collisions(directory):
    """Make the agent's _create_part_file meet a taken name and a dangling link first: it must
    pass both by and make a new private file. Returns its name, mode and the files it met."""
    agent = sys.modules["chopsticks_nb._agent"]
    taken = os.path.join(directory, ".target.%s.part" % ("00" * 6))
    linked = os.path.join(directory, ".target.%s.part" % ("01" * 6))
    with open(taken, "w") as f:
        f.write("keep")
    os.symlink(os.path.join(directory, "nowhere"), linked)
    names = [b"\x00" * 6, b"\x01" * 6]
    real = os.urandom
    os.urandom = lambda n: names.pop(0) if names else real(n)
    try:
        fd, tmp = agent._create_part_file(os.path.join(directory, "target"))
    finally:
        os.urandom = real
    os.close(fd)
    with open(taken) as f:
        kept = f.read()
    return {
        "name": os.path.basename(tmp),
        "mode": os.stat(tmp).st_mode & 0o777,
        "kept": kept,
        "link_left_dangling": os.path.islink(linked) and not os.path.exists(linked),
    }


def upload_with_wrong_checksum(path, chunks):
    """Drive the agent's _Upload with ``chunks`` and a wrong SHA-1: the error, and what is left."""
    agent = sys.modules["chopsticks_nb._agent"]
    upload = agent._Upload(path, 0o644)
    for chunk in chunks:
        upload.write(chunk)
    try:
        upload.finish(sum(len(c) for c in chunks), "0" * 40)
    except OSError as exc:
        error = str(exc)
    else:
        error = None
    directory = os.path.dirname(path)
    return {"error": error, "left": sorted(os.listdir(directory))}


def print_for(seconds):
    """Print numbered lines as fast as the pipe takes them, for ``seconds``."""
    end = time.time() + seconds
    count = 0
    while time.time() < end:
        print(f"line {count}")
        count += 1
    return count


def print_later(delay, text):
    """Print ``text`` from a thread of the agent ``delay`` seconds after returning."""
    import threading

    timer = threading.Timer(delay, print, (text,))
    timer.daemon = True
    timer.start()
    return True


def sleep_after_ignoring_sigint(ignore_for, seconds):
    """Ignore SIGINT for ``ignore_for`` seconds (a cancel's first signal is lost), then sleep."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    print("ignoring SIGINT", flush=True)
    time.sleep(ignore_for)
    signal.signal(signal.SIGINT, previous)
    return sleep_then_report(seconds)


class Tools:
    """Callables reached through a class: they go by their dotted qualified name."""

    @staticmethod
    def double(value):
        return value * 2


def agent_spin_misses():
    """How many times in a row the agent looked for the next call in vain (see Agent.spin)."""
    return sys.stdout.agent.polls.misses


def agent_depth():
    """How deep this agent thinks it is (its agent module's DEPTH)."""
    return sys.modules["chopsticks_nb._agent"].DEPTH


def depth_through(alias):
    """[this agent's DEPTH, the DEPTH of an agent opened through ``alias``.tunnel]; in place of
    the second, the import error's type if ``alias`` cannot be imported here."""
    import importlib

    try:
        tunnel_module = importlib.import_module(alias + ".tunnel")
    except ImportError as exc:
        return [agent_depth(), type(exc).__name__]
    with tunnel_module.Local("through-" + alias) as inner:
        return [agent_depth(), inner.call(agent_depth)]
