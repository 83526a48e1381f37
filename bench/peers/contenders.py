"""One adapter per contender: the same measurements, each done the way that library does it.

Every adapter answers the same operations (see :class:`Contender`); the worker process
(worker.py) runs one adapter and the runner (bench/bench_peers.py) interleaves the workers.
A transport is a dict: ``{"kind": "local"}`` or ``{"kind": "ssh", "config": ssh_config,
"hosts": [names], "options": [ssh options], "python": remote interpreter}``.

Where a peer has no facility for a measure, the adapter uses the peer's documented way and
its ``notes`` say which (shown in the results and in bench/README.md).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import importlib
import os
import shlex
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any, Callable, ClassVar

import peers_mitogen
import peers_remote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for _placement

from _placement import Placement

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
Transport = dict[str, Any]


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


#: A notebook cell defining functions, and a ``%%remote`` cell using them (measured by ``cell``).
NOTEBOOK_CELL = """\
def scale(value, factor=3):
    return value * factor


def summary(values):
    scaled = [scale(v) for v in values]
    return {"n": len(scaled), "total": sum(scaled), "largest": max(scaled)}
"""
REMOTE_CELL = "data = list(range(100))\nsummary(data)"
REMOTE_CELL_VALUE = {"n": 100, "total": 14850, "largest": 297}


def notebook_names() -> dict[str, Any]:
    """The functions of NOTEBOOK_CELL as a notebook defines them: in ``__main__``, with their
    source only in ``linecache`` under a made-up file name (as IPython keeps a cell's)."""
    import linecache

    filename = "<ipython-input-1-bench>"
    linecache.cache[filename] = (len(NOTEBOOK_CELL), None, NOTEBOOK_CELL.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(NOTEBOOK_CELL, filename, "exec"), namespace)
    return {"scale": namespace["scale"], "summary": namespace["summary"]}


def _time_calls(call: Callable[[bytes], object], payload: bytes, count: int) -> list[float]:
    """Seconds each of ``count`` calls ``call(payload)`` takes, one sample a call."""
    samples = []
    clock = time.perf_counter
    for _ in range(count):
        start = clock()
        call(payload)
        samples.append(clock() - start)
    return samples


class Contender:
    """Base: subclasses give ``connect``/``call_pid``/``caller``/``close`` and file operations."""

    name = ""
    dist = ""
    #: how each measure is done, where it is not the obvious API
    notes: ClassVar[dict[str, str]] = {}

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.ssh = transport["kind"] == "ssh"
        self.python = transport.get("python") or sys.executable

    # -- what subclasses give ------------------------------------------------------------------

    def connect(self, index: int) -> Any:
        raise NotImplementedError

    def call_pid(self, handle: Any) -> int:
        raise NotImplementedError

    def caller(self, handle: Any) -> Callable[[bytes], int]:
        """A function sending ``payload`` and returning the remote ``len(payload)``."""
        raise NotImplementedError

    def close(self, handle: Any) -> None:
        raise NotImplementedError

    def put(self, handle: Any, source: str, target: str) -> None:
        raise NotImplementedError

    def fetch(self, handle: Any, source: str, target: str) -> None:
        raise NotImplementedError

    def import_package(self, handle: Any, name: str, root: str, remote_dir: str) -> int:
        raise NotImplementedError

    def call_package(self, handle: Any, name: str, root: str, remote_dir: str) -> int:
        """A first call of a function of the package itself (which imports it); for a peer that
        calls no function by reference, its way of importing the package."""
        return self.import_package(handle, name, root, remote_dir)

    def import_round_trips(self, handle: Any) -> int | None:
        return None

    def run_cell(self, handle: Any, names: dict[str, Any]) -> Any:
        """Run REMOTE_CELL with ``names`` bound, as ``%%remote`` does; None where the peer has
        no way to run source text remotely."""
        return None

    def warm(self, handle: Any) -> None:
        """Before (f): a first call, importing peers_remote where it is forwarded."""
        self.call_pid(handle)

    def warm_transfer(self, handle: Any) -> None:
        """Before (e): a first call, importing what the transfer needs remotely."""
        self.call_pid(handle)

    def connect_group(self, count: int) -> list[Any]:
        """Connect ``count`` hosts and make one call on each; the default uses a thread pool
        (the peer has no parallel connect of its own)."""

        def one(index: int) -> Any:
            handle = self.connect(index)
            self.call_pid(handle)
            return handle

        with concurrent.futures.ThreadPoolExecutor(max_workers=min(count, 32)) as pool:
            return list(pool.map(one, range(count)))

    def close_group(self, handles: list[Any]) -> None:
        for handle in handles:
            self.close(handle)

    # -- the operations ------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": _version(self.dist) if self.dist else "",
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "notes": self.notes,
        }

    def host(self, index: int) -> str:
        hosts = self.transport["hosts"]
        return str(hosts[index % len(hosts)])

    def ssh_argv(self, index: int) -> list[str]:
        """``ssh -F CONFIG OPTIONS HOST``: the client command every contender runs over SSH."""
        t = self.transport
        return ["ssh", "-F", t["config"], *t["options"], self.host(index)]

    def first_call(self) -> dict[str, Any]:
        start = time.perf_counter()
        handle = self.connect(0)
        self.call_pid(handle)
        elapsed = time.perf_counter() - start
        self.close(handle)
        return {"s": elapsed}

    def cell(self) -> dict[str, Any]:
        """A ``%%remote`` cell using functions defined in the notebook, on a connection warmed
        by one call: its time, or None where the peer cannot run source."""
        names = notebook_names()
        handle = self.connect(0)
        try:
            self.call_pid(handle)
            before = self.import_round_trips(handle)
            start = time.perf_counter()
            value = self.run_cell(handle, names)
            elapsed = time.perf_counter() - start
            after = self.import_round_trips(handle)
        finally:
            self.close(handle)
        if value is None:
            return {"s": None}
        if value != REMOTE_CELL_VALUE:
            raise RuntimeError(f"{self.name}: the cell gave {value!r}")
        # The call's own round trip, and the imports it asked for.
        trips = None if before is None or after is None else 1 + after - before
        return {"s": elapsed, "round_trips": trips}

    def round_trip(self, size: int, count: int, placement: str | None = None) -> dict[str, Any]:
        payload = b"x" * size
        with Placement(placement) as place:
            handle = self.connect(0)
            try:
                call = self.caller(handle)
                assert call(payload) == size
                place.remote_started()
                for _ in range(3):
                    assert call(payload) == size
                samples = _time_calls(call, payload, count)
            finally:
                self.close(handle)
        return {"samples": samples}

    def group(self, count: int) -> dict[str, Any]:
        start = time.perf_counter()
        handles = self.connect_group(count)
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        self.close_group(handles)
        return {"s": elapsed, "close_s": time.perf_counter() - start}

    def transfer(self, source: str, workdir: str) -> dict[str, Any]:
        remote = os.path.join(workdir, f"remote-{self.name}")
        back = os.path.join(workdir, f"back-{self.name}")
        size = os.path.getsize(source)
        handle = self.connect(0)
        try:
            self.warm_transfer(handle)
            start = time.perf_counter()
            self.put(handle, source, remote)
            put_s = time.perf_counter() - start
            start = time.perf_counter()
            self.fetch(handle, remote, back)
            fetch_s = time.perf_counter() - start
        finally:
            self.close(handle)
        sizes = (os.path.getsize(remote), os.path.getsize(back))
        for path in (remote, back):
            os.unlink(path)
        if sizes != (size, size):
            raise RuntimeError(f"{self.name}: transferred sizes {sizes}, expected {size}")
        return {"put_s": put_s, "fetch_s": fetch_s, "bytes": size}

    def first_import(
        self, name: str, root: str, remote_dir: str, own_function: bool = False
    ) -> dict[str, Any]:
        """A first call importing the package ``name``: a function (of a module the remote
        has) importing it by name, or with ``own_function`` a function of the package itself."""
        # The package is importable here (module forwarders serve it from this process).
        if root not in sys.path:
            sys.path.insert(0, root)
        importlib.invalidate_caches()
        handle = self.connect(0)
        try:
            self.warm(handle)
            before = self.import_round_trips(handle)
            start = time.perf_counter()
            if own_function:
                modules = self.call_package(handle, name, root, remote_dir)
            else:
                modules = self.import_package(handle, name, root, remote_dir)
            elapsed = time.perf_counter() - start
            after = self.import_round_trips(handle)
        finally:
            self.close(handle)
        trips = None if before is None or after is None else after - before
        return {"s": elapsed, "modules": modules, "round_trips": trips}


# ---------------------------------------------------------------------------------------------


class CallContender(Contender):
    """A peer whose handle runs a function remotely with ``handle.call(function, *args)``,
    forwarding the module it comes from (chopsticks_nb, chopsticks, mitogen)."""

    def warm(self, handle: Any) -> None:
        handle.call(peers_remote.ping)

    def call_pid(self, handle: Any) -> int:
        return int(handle.call(os.getpid))

    def caller(self, handle: Any) -> Callable[[bytes], int]:
        call = handle.call
        return lambda payload: call(len, payload)

    def import_package(self, handle: Any, name: str, root: str, remote_dir: str) -> int:
        return int(handle.call(peers_remote.import_package, name))

    def call_package(self, handle: Any, name: str, root: str, remote_dir: str) -> int:
        return int(handle.call(importlib.import_module(name).module_count))


class TunnelContender(CallContender):
    """chopsticks and its successor: tunnels with put/fetch, and a Group calling them all."""

    group_class: Any = None

    def close(self, handle: Any) -> None:
        handle.close()

    def connect_group(self, count: int) -> list[Any]:
        group = self.group_class([self.connect(i) for i in range(count)])
        failed = dict(group.call(os.getpid).failures())
        if failed:
            group.close()
            raise RuntimeError(f"hosts failed: {failed}")
        return [group]

    def put(self, handle: Any, source: str, target: str) -> None:
        handle.put(source, target)

    def fetch(self, handle: Any, source: str, target: str) -> None:
        handle.fetch(source, target)


class ChopsticksNB(TunnelContender):
    name = "chopsticks_nb"
    dist = "chopsticks_nb"
    notes: ClassVar[dict[str, str]] = {
        "d": "Group(...).call: one broker thread connects every host at once",
        "e": "tunnel.put / tunnel.fetch (SHA-1 checked)",
        "f": "module forwarding (the import hook asks the controller)",
    }

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        from chopsticks_nb.group import Group
        from chopsticks_nb.tunnel import Local, SSHTunnel

        self.group_class, self.Local, self.SSHTunnel = Group, Local, SSHTunnel

    def connect(self, index: int) -> Any:
        if self.ssh:
            t = self.transport
            return self.SSHTunnel(
                self.host(index),
                ssh_config=t["config"],
                ssh_options=t["options"],
                python3=self.python,
            )
        return self.Local(f"h{index}")

    def import_round_trips(self, handle: Any) -> int | None:
        return int(handle._conn.modserver.requests)

    def run_cell(self, handle: Any, names: dict[str, Any]) -> Any:
        return handle.exec(REMOTE_CELL, names)


class Chopsticks(TunnelContender):
    """Daniel Pope's original chopsticks 1.0 (its remote side needs Python < 3.12)."""

    name = "chopsticks"
    dist = "chopsticks"
    notes: ClassVar[dict[str, str]] = {
        "d": "chopsticks.group.Group(...).call: its own loop connects every host at once",
        "e": "tunnel.put / tunnel.fetch",
        "f": "module forwarding (one request per module)",
        "ssh": "SSHTunnel subclass whose cmd_args adds -F and the ssh options",
    }

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        import chopsticks.group
        import chopsticks.tunnel as ct

        python, argv = self.python, self.ssh_argv

        class BenchLocal(ct.Local):
            python3 = python

        class BenchSSH(ct.SSHTunnel):
            python3 = python

            def __init__(self, host: str, index: int) -> None:
                super().__init__(host)
                self.index = index

            def cmd_args(self) -> list[str]:
                remote = [self.python3, *self.PYTHON_ARGS]
                return [*argv(self.index), shlex.join(remote)]

        self.BenchLocal, self.BenchSSH = BenchLocal, BenchSSH
        self.group_class = chopsticks.group.Group
        self.trips = 0

    def connect(self, index: int) -> Any:
        if self.ssh:
            return self.BenchSSH(self.host(index), index)
        return self.BenchLocal(f"h{index}")

    def import_package(self, handle: Any, name: str, root: str, remote_dir: str) -> int:
        original = handle.handle_imp

        def counting(mod: Any) -> Any:
            self.trips += 1
            return original(mod)

        handle.handle_imp = counting
        return super().import_package(handle, name, root, remote_dir)

    def import_round_trips(self, handle: Any) -> int | None:
        return self.trips


EXECNET_LEN_LOOP = "for item in channel:\n    channel.send(len(item))\n"
EXECNET_STREAM = """
path, chunk = channel.receive()
with open(path, "rb") as f:
    while True:
        data = f.read(chunk)
        if not data:
            break
        channel.send(data)
channel.send(None)
"""
EXECNET_IMPORT = """
import importlib, sys
path, name = channel.receive()
sys.path.insert(0, path)
importlib.import_module(name)
channel.send(sum(1 for m in list(sys.modules) if m == name or m.startswith(name + ".")))
"""


class Execnet(Contender):
    name = "execnet"
    dist = "execnet"
    notes: ClassVar[dict[str, str]] = {
        "b": "a channel loop (remote_exec once, then send/receive): execnet has no call API",
        "d": "a thread pool calling makegateway (execnet connects one gateway at a time)",
        "e": "put: execnet.RSync of the file; fetch: channel streaming (no fetch facility)",
        "f": "no module forwarding: RSync the package directory, then import it",
    }

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        import execnet

        self.execnet = execnet

    def spec(self, index: int) -> str:
        if self.ssh:
            t = self.transport
            ssh = " ".join([*t["options"], self.host(index)])
            return f"ssh={ssh}//ssh_config={t['config']}//python={self.python}"
        return f"popen//python={self.python}"

    def connect(self, index: int) -> Any:
        return self.execnet.makegateway(self.spec(index))

    def call_pid(self, handle: Any) -> int:
        return int(handle.remote_exec("import os; channel.send(os.getpid())").receive())

    def caller(self, handle: Any) -> Callable[[bytes], int]:
        channel = handle.remote_exec(EXECNET_LEN_LOOP)

        def call(payload: bytes) -> int:
            channel.send(payload)
            return int(channel.receive())

        return call

    def close(self, handle: Any) -> None:
        handle.exit()
        handle.join(10)

    def put(self, handle: Any, source: str, target: str) -> None:
        rsync = self.execnet.RSync(source, verbose=False)
        rsync.add_target(handle, target)
        rsync.send()

    def fetch(self, handle: Any, source: str, target: str) -> None:
        channel = handle.remote_exec(EXECNET_STREAM)
        channel.send((source, 512 * 1024))
        with open(target, "wb") as out:
            while True:
                data = channel.receive()
                if data is None:
                    break
                out.write(data)

    def run_cell(self, handle: Any, names: dict[str, Any]) -> Any:
        # execnet runs source text: the notebook's definitions go along as text, and the
        # cell's last line is sent back on the channel.
        *body, last = REMOTE_CELL.splitlines()
        source = "\n".join([NOTEBOOK_CELL, *body, f"channel.send({last})"])
        return handle.remote_exec(source).receive()

    def import_package(self, handle: Any, name: str, root: str, remote_dir: str) -> int:
        rsync = self.execnet.RSync(os.path.join(root, name), verbose=False)
        rsync.add_target(handle, os.path.join(remote_dir, name))
        rsync.send()
        channel = handle.remote_exec(EXECNET_IMPORT)
        channel.send((remote_dir, name))
        return int(channel.receive())


class Mitogen(CallContender):
    name = "mitogen"
    dist = "mitogen"
    notes: ClassVar[dict[str, str]] = {
        "a": "one Broker and Router per process, made before timing (as run_with_router does)",
        "d": "a thread pool calling router.local()/ssh() (each connect blocks until the child "
        "is up)",
        "e": "put: mitogen.service.FileService pulled by the child; fetch: Sender/Receiver "
        "streaming (no fetch facility)",
        "f": "module forwarding (the child asks its parent, which preloads related modules)",
        "ssh": "router.ssh(check_host_keys='ignore', ssh_args=[-F and the ssh options]); "
        "mitogen adds -o Compression yes by default",
    }

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        import mitogen.core
        import mitogen.master
        import mitogen.service

        self.mitogen_core, self.service = mitogen.core, mitogen.service
        self.broker = mitogen.master.Broker()
        self.router = mitogen.master.Router(self.broker)
        self.files = mitogen.service.FileService(self.router)
        self.pool = mitogen.service.Pool(self.router, services=[self.files], size=2)

    def shutdown(self) -> None:
        self.pool.stop()
        self.broker.shutdown()
        self.broker.join()

    def connect(self, index: int) -> Any:
        if self.ssh:
            t = self.transport
            return self.router.ssh(
                hostname=self.host(index),
                python_path=self.python,
                check_host_keys="ignore",
                ssh_args=["-F", t["config"], *t["options"]],
            )
        return self.router.local(python_path=self.python)

    def warm_transfer(self, handle: Any) -> None:
        handle.call(peers_mitogen.warm)

    def close(self, handle: Any) -> None:
        handle.shutdown(wait=True)

    def put(self, handle: Any, source: str, target: str) -> None:
        self.files.register(source)
        handle.call(peers_mitogen.mitogen_get, self.router.myself(), source, target)

    def fetch(self, handle: Any, source: str, target: str) -> None:
        receiver = self.mitogen_core.Receiver(self.router)
        pending = handle.call_async(peers_mitogen.mitogen_stream, receiver.to_sender(), source)
        with open(target, "wb") as out:
            for message in receiver:
                out.write(message.unpickle())
        pending.get().unpickle()

    def import_round_trips(self, handle: Any) -> int | None:
        return int(self.router.responder.get_module_count)


RPYC_SERVER = "rpyc_classic.py"


class Rpyc(Contender):
    name = "rpyc"
    dist = "rpyc"
    notes: ClassVar[dict[str, str]] = {
        "a": "rpyc's classic stdio server (rpyc_classic.py -m stdio) via connect_subproc; "
        "the call is conn.modules.os.getpid() (each attribute is a round trip)",
        "b": "a netref to the remote len, fetched once: one round trip per call",
        "d": "a thread pool calling connect_subproc (no parallel connect of its own)",
        "e": "rpyc.classic.upload / download (64 kB chunks, one round trip each)",
        "f": "no module forwarding: rpyc.classic.upload of the package directory, then import it",
        "ssh": "connect_subproc over ssh; rpyc must be installed on the remote (here: the bench "
        "venv's site-packages on PYTHONPATH); its zero-deploy (plumbum, sockets) is not measured",
    }

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        from rpyc.utils import classic, factory

        self.classic, self.factory = classic, factory
        # rpyc must be installed where its server runs: this venv's, found by path.
        self.server = str(Path(sys.executable).parent / RPYC_SERVER)
        self.site_packages = sysconfig.get_paths()["purelib"]

    def connect(self, index: int) -> Any:
        remote = [self.python, "-u", self.server, "-q", "-m", "stdio"]
        if self.ssh:
            command = f"PYTHONPATH={shlex.quote(self.site_packages)} {shlex.join(remote)}"
            argv = [*self.ssh_argv(index), command]
        else:
            argv = remote
        return self.factory.connect_subproc(argv, self.classic.ClassicService)

    def call_pid(self, handle: Any) -> int:
        return int(handle.modules.os.getpid())

    def caller(self, handle: Any) -> Callable[[bytes], int]:
        return handle.builtins.len  # type: ignore[no-any-return]

    def close(self, handle: Any) -> None:
        proc = handle.proc
        handle.close()
        proc.wait(10)
        proc.stdout.close()
        proc.stdin.close()

    def put(self, handle: Any, source: str, target: str) -> None:
        self.classic.upload(handle, source, target)

    def fetch(self, handle: Any, source: str, target: str) -> None:
        self.classic.download(handle, source, target)

    def import_package(self, handle: Any, name: str, root: str, remote_dir: str) -> int:
        self.classic.upload(handle, os.path.join(root, name), os.path.join(remote_dir, name))
        handle.modules.sys.path.insert(0, remote_dir)
        handle.modules.importlib.import_module(name)
        count = f"sum(1 for m in __import__('sys').modules if m.startswith({name!r}))"
        return int(handle.eval(count))


# ---------------------------------------------------------------------------------------------
# The physical floors, measured by the same worker protocol so they interleave with the others.

ECHO_SERVER = (Path(__file__).resolve().parents[1] / "echo_server.py").read_text()

IMPORT_SERVER = """
import importlib, os, sys
for line in sys.stdin:
    path, name = line.split()
    sys.path.insert(0, path)
    importlib.import_module(name)
    count = sum(1 for m in list(sys.modules) if m == name or m.startswith(name + "."))
    sys.stdout.write("%d\\n" % count)
    sys.stdout.flush()
"""


class Floor(Contender):
    """No library: what the machine itself costs for each measure."""

    name = "floor"
    notes: ClassVar[dict[str, str]] = {
        "a": "a bare `python -c pass` start (over SSH: `ssh HOST python -c pass`)",
        "b": "a raw length-prefixed echo through the subprocess's pipes (os.read/os.write)",
        "c": "the same raw echo with a 1 MB message (1 MB pipes)",
        "d": "N bare `python -c pass` started at once (over SSH: N `ssh HOST python -c pass`)",
        "e": "`cat` through pipes: Python writes the file into `cat > target` (put) and reads "
        "`cat source` (fetch), 1 MB pipes, 1 MB chunks, no checksum",
        "f": "a warm interpreter imports the package from local disk, asked over a pipe",
    }

    def argv(self, index: int, *program: str) -> list[str]:
        remote = [self.python, *program]
        if self.ssh:
            return [*self.ssh_argv(index), shlex.join(remote)]
        return remote

    def first_call(self) -> dict[str, Any]:
        start = time.perf_counter()
        subprocess.run(self.argv(0, "-c", "pass"), check=True, start_new_session=True)
        return {"s": time.perf_counter() - start}

    def group(self, count: int) -> dict[str, Any]:
        start = time.perf_counter()
        # A session each, as chopsticks_nb starts its commands (see _common.bare_starts).
        argvs = [self.argv(i, "-c", "pass") for i in range(count)]
        procs = [subprocess.Popen(argv, start_new_session=True) for argv in argvs]
        for proc in procs:
            proc.wait()
        return {"s": time.perf_counter() - start, "close_s": 0.0}

    def round_trip(self, size: int, count: int, placement: str | None = None) -> dict[str, Any]:
        with Placement(placement) as place:
            return self._round_trip(size, count, place)

    def _round_trip(self, size: int, count: int, place: Placement) -> dict[str, Any]:
        proc = subprocess.Popen(
            self.argv(0, "-c", ECHO_SERVER, "8"), stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        place.remote_started()
        assert proc.stdin and proc.stdout
        w, r = proc.stdin.fileno(), proc.stdout.fileno()
        for fd in (w, r):  # 1 MB pipes, as chopsticks_nb uses: the floor is the best case
            _grow_pipe(fd)
        message = len(b"x" * size).to_bytes(4, "big") + b"x" * size
        expected = 4 + min(size, 8)

        def echo(message: bytes) -> None:
            view = memoryview(message)
            while view:
                view = view[os.write(w, view) :]
            got = 0
            while got < expected:
                got += len(os.read(r, expected - got))

        try:
            for _ in range(3):
                echo(message)
            samples = _time_calls(echo, message, count)
        finally:
            _stop(proc)
        return {"samples": samples}

    def one_round_trip(self) -> float:
        """Seconds of one small exchange over a session already open: over a slow link, what
        a call costs at the least (the floor of (f) and of a cell there)."""
        proc = subprocess.Popen(
            self.argv(0, "-c", ECHO_SERVER, "8"), stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert proc.stdin and proc.stdout
        w, r = proc.stdin.fileno(), proc.stdout.fileno()
        message = (8).to_bytes(4, "big") + b"x" * 8

        def echo() -> None:
            os.write(w, message)
            got = 0
            while got < len(message):
                got += len(os.read(r, len(message) - got))

        try:
            echo()  # the session is open and the echo running
            start = time.perf_counter()
            echo()
            return time.perf_counter() - start
        finally:
            _stop(proc)

    def cell(self) -> dict[str, Any]:
        if not self.ssh:
            return {"s": None}
        return {"s": self.one_round_trip()}

    def transfer(self, source: str, workdir: str) -> dict[str, Any]:
        if self.ssh:
            return self.ssh_transfer(source, workdir)
        target = os.path.join(workdir, "remote-floor")
        back = os.path.join(workdir, "back-floor")
        size = os.path.getsize(source)
        chunk = 1024 * 1024
        start = time.perf_counter()
        with open(target, "wb") as out:
            cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=out)
        assert cat.stdin
        _grow_pipe(cat.stdin.fileno())
        with open(source, "rb", buffering=0) as f:
            while data := f.read(chunk):
                cat.stdin.write(data)
        cat.stdin.close()
        cat.wait()
        put_s = time.perf_counter() - start
        start = time.perf_counter()
        cat = subprocess.Popen(["cat", target], stdout=subprocess.PIPE)
        assert cat.stdout
        _grow_pipe(cat.stdout.fileno())
        with open(back, "wb", buffering=0) as out:
            while data := cat.stdout.read(chunk):
                out.write(data)
        cat.wait()
        cat.stdout.close()
        fetch_s = time.perf_counter() - start
        for path in (target, back):
            os.unlink(path)
        return {"put_s": put_s, "fetch_s": fetch_s, "bytes": size}

    def ssh_transfer(self, source: str, workdir: str) -> dict[str, Any]:
        """``cat`` through ssh each way, timed from the moment the remote command runs (the
        contenders' connect is not timed either): ``sh -c 'echo; exec cat > TARGET'``, and
        ``sh -c 'echo; read x; exec cat SOURCE'`` started by a line sent when the clock starts."""
        target = os.path.join(workdir, "remote-floor")
        back = os.path.join(workdir, "back-floor")
        size = os.path.getsize(source)
        chunk = 1024 * 1024
        put = f"echo; exec cat > {shlex.quote(target)}"
        proc = subprocess.Popen(
            [*self.ssh_argv(0), shlex.join(["sh", "-c", put])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdin and proc.stdout
        proc.stdout.readline()
        start = time.perf_counter()
        with open(source, "rb", buffering=0) as f:
            while data := f.read(chunk):
                proc.stdin.write(data)
        proc.stdin.close()
        proc.wait()
        put_s = time.perf_counter() - start
        proc.stdout.close()
        fetch = f"echo; read x; exec cat {shlex.quote(target)}"
        proc = subprocess.Popen(
            [*self.ssh_argv(0), shlex.join(["sh", "-c", fetch])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdin and proc.stdout
        proc.stdout.readline()
        start = time.perf_counter()
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        with open(back, "wb", buffering=0) as out:
            while data := proc.stdout.read(chunk):
                out.write(data)
        proc.wait()
        fetch_s = time.perf_counter() - start
        proc.stdin.close()
        proc.stdout.close()
        sizes = (os.path.getsize(target), os.path.getsize(back))
        for path in (target, back):
            os.unlink(path)
        if sizes != (size, size):
            raise RuntimeError(f"floor: transferred sizes {sizes}, expected {size}")
        return {"put_s": put_s, "fetch_s": fetch_s, "bytes": size}

    def first_import(
        self, name: str, root: str, remote_dir: str, own_function: bool = False
    ) -> dict[str, Any]:
        if self.ssh:  # over a slow link: what any call costs (one exchange)
            return {"s": self.one_round_trip(), "modules": 0, "round_trips": 1}
        proc = subprocess.Popen(
            [self.python, "-c", IMPORT_SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin and proc.stdout
        proc.stdin.write(". os\n")  # warm up: the server is running and importing
        proc.stdin.flush()
        proc.stdout.readline()
        start = time.perf_counter()
        proc.stdin.write(f"{root} {name}\n")
        proc.stdin.flush()
        modules = int(proc.stdout.readline())
        elapsed = time.perf_counter() - start
        _stop(proc)
        return {"s": elapsed, "modules": modules, "round_trips": 1}


def _grow_pipe(fd: int) -> None:
    """A 1 MB pipe, as chopsticks_nb makes (where the kernel allows it)."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, 1024 * 1024)


def _stop(proc: subprocess.Popen[Any]) -> None:
    """End a server reading its stdin: close it, reap the process, close its stdout."""
    assert proc.stdin and proc.stdout
    proc.stdin.close()
    proc.wait()
    proc.stdout.close()


CONTENDERS: dict[str, type[Contender]] = {
    cls.name: cls for cls in (Floor, ChopsticksNB, Chopsticks, Execnet, Mitogen, Rpyc)
}
