"""The relay's side of relayed tunnels: the commands it runs for the controller, bytes passed on.

Sent with the first CHILD_START of a connection (see _agent.Msg) and compiled by the agent
there, so that an agent that relays nothing never pays for this code. Like the agent it is one
stdlib-only file whose syntax is valid on Python 3.6. The relay never reads the bytes it passes
on: they are another agent's frames, for the controller alone to decode and check.

One pump thread serves every child (poll over their pipes), however many there are; the
agent's threads that read the controller's frames only hand it work, and never block on a
child. Each child has a window (CHILD_WINDOW) each way: the controller sends a child's input
only within the credit the pump returns as the child takes it (CHILD_WRITTEN), and the pump
reads a child's output only within the credit the controller returns as it takes it
(CHILD_READ). Neither side buffers more than a window per child, and a child that stops
reading its input, or floods its output, stalls only itself.
"""

import _thread
import os
import select
from _collections import deque

READ_SIZE = 65536
#: Milliseconds between looks at the exit status of children whose output has ended (a close
#: waits for it).
REAP_INTERVAL = 10
_STDIN, _STDOUT, _STDERR = 0, 1, 2


class _Child(object):
    """One command run for the controller, and its pipes (each -1 once closed)."""

    def __init__(self, child_id, argv, window):
        self.id = child_id
        self.argv = argv
        self.proc = None
        self.fds = [-1, -1, -1]  # stdin, stdout, stderr
        self.input = deque()  # bytes for its stdin, in order
        self.queued = 0  # bytes in input
        self.unacked = 0  # bytes written to its stdin and not yet acknowledged
        self.close_requested = False
        self.credit = window  # bytes of output the controller will still take
        self.ended = [False, False, False]  # stdin closed; stdout, stderr at EOF (and sent)

    def spawn(self):
        """Start the command; None, or why it could not start."""
        import subprocess  # only relays import it (it is slow to import)

        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,  # signals reach its whole session (ssh, sudo, ...)
            )
        except (OSError, ValueError) as exc:
            return "cannot run %r: %s" % (self.argv[0], getattr(exc, "strerror", None) or exc)
        for role, stream in enumerate((self.proc.stdin, self.proc.stdout, self.proc.stderr)):
            self.fds[role] = stream.fileno()
            os.set_blocking(self.fds[role], False)
        return None

    def close(self, role):
        """Close one of its pipes (through its file object, which owns the descriptor)."""
        if self.fds[role] >= 0:
            self.fds[role] = -1
            (self.proc.stdin, self.proc.stdout, self.proc.stderr)[role].close()
        if role == _STDIN:
            self.ended[_STDIN] = True
            self.input.clear()
            self.queued = 0

    def masks(self):
        """(role, fd, poll events wanted) of its open pipes."""
        wanted = (
            select.POLLOUT if self.input else 0,
            select.POLLIN if self.credit > 0 else 0,
            select.POLLIN if self.credit > 0 else 0,
        )
        return [(role, fd, wanted[role]) for role, fd in enumerate(self.fds) if fd >= 0]

    def write_input(self):
        """Write what the pipe takes of the queued input; the bytes written. (Any thread, under
        the pump's lock; only the pump thread closes pipes.)"""
        written = 0
        while self.input:
            data = self.input[0]
            try:
                count = os.write(self.fds[_STDIN], data)
            except BlockingIOError:
                break
            except OSError:  # it closed its stdin (or exited): what it will not read is dropped
                self.input.clear()
                self.queued = 0
                self.close_requested = True  # the pump thread closes it (it owns the poller)
                break
            written += count
            self.queued -= count
            if count == len(data):
                self.input.popleft()
            else:
                self.input[0] = data[count:]
        return written


class Pump(object):
    """The children of one relay, and the thread that passes their bytes on.

    ``send(kind, id, payload)`` writes a frame to the controller (thread-safe); ``protocol`` is
    the agent's module (Msg, encode, CHILD_WINDOW). The handlers (start, write, close_input,
    signal, credit) run on whichever agent thread reads the controller's frames.
    """

    def __init__(self, send, protocol):
        self.send = send
        self.msg = protocol.Msg
        self.encode = protocol.encode
        self.error = protocol.DecodeError
        self.window = protocol.CHILD_WINDOW
        self.ack_at = self.window // 4  # CHILD_WRITTEN once this much is unacknowledged
        self.lock = _thread.allocate_lock()
        self.children = {}  # id -> _Child, from its start until its exit is reported
        self.starting = deque()  # children to spawn, in order
        self.signals = deque()  # (child, signal number), in order
        self.dirty = set()  # children whose poll registration may have to change
        self.exiting = []  # children whose stdout has ended: their exit status is awaited
        self.registered = {}  # fd -> (child, role), as the poller has them
        self.poller = select.poll()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        self.poller.register(self.wake_r, select.POLLIN)
        self.woken = False
        _thread.start_new_thread(self.run, ())

    # -- the controller's requests (an agent thread reading the controller's frames) -----------

    def start(self, child_id, argv):
        with self.lock:
            if child_id in self.children:
                raise self.error("child %d started twice" % child_id)
            child = self.children[child_id] = _Child(child_id, argv, self.window)
            self.starting.append(child)
        self.wake()

    def write(self, child_id, payload):
        """Bytes for a child's stdin: written at once as far as its pipe takes them, the rest
        queued for the pump thread (within the window, which the controller keeps to)."""
        ack = 0
        with self.lock:
            child = self.children.get(child_id)
            if child is None or child.ended[_STDIN] or child.close_requested:
                return  # it has ended: what was on its way is dropped
            if child.queued + len(payload) > self.window:
                raise self.error("input for child %d beyond its window" % child_id)
            if not child.input and child.fds[_STDIN] >= 0:
                child.input.append(payload)  # a view into the channel's buffer: written now
                child.queued += len(payload)
                ack = self.written(child, child.write_input())
                if child.input:
                    child.input[0] = bytes(child.input[0])  # the view dies with the next read
            else:
                child.input.append(bytes(payload))
                child.queued += len(payload)
            wake = bool(child.input) or child.close_requested
            if wake:
                self.dirty.add(child)
        if ack:
            self.send(self.msg.CHILD_WRITTEN, child_id, self.encode(ack))
        if wake:
            self.wake()

    def close_input(self, child_id):
        """End a child's stdin now: what it has not taken is dropped, as if it had been in the
        pipe the controller closes (a child that reads nothing cannot hold up its end)."""
        with self.lock:
            child = self.children.get(child_id)
            if child is None:
                return
            child.input.clear()
            child.queued = 0
            child.close_requested = True
            self.dirty.add(child)
        self.wake()

    def signal(self, child_id, signum):
        with self.lock:
            child = self.children.get(child_id)
            if child is None:
                return  # it has exited, and may not be signalled any more (its pid is free)
            self.signals.append((child, signum))
        self.wake()

    def credit(self, child_id, count):
        """The controller took ``count`` more bytes of a child's output."""
        with self.lock:
            child = self.children.get(child_id)
            if child is None:
                return
            was = child.credit
            child.credit = min(child.credit + count, self.window)
            if was > 0:
                return
            self.dirty.add(child)
        self.wake()

    def wake(self):
        with self.lock:
            if self.woken:
                return
            self.woken = True
        os.write(self.wake_w, b"\0")

    def written(self, child, count):
        """Under the lock: count bytes written to a child's stdin; what to acknowledge now."""
        child.unacked += count
        if child.unacked < self.ack_at:
            return 0
        ack, child.unacked = child.unacked, 0
        return ack

    # -- the pump thread -----------------------------------------------------------------------

    def run(self):
        while True:
            self.spawn_and_signal()
            self.register()
            timeout = REAP_INTERVAL if self.exiting else None
            for fd, _ in self.poller.poll(timeout):
                if fd == self.wake_r:
                    os.read(self.wake_r, 4096)
                    with self.lock:  # after the read: a wake-up after it writes anew
                        self.woken = False
                    continue
                entry = self.registered.get(fd)
                if entry is None:
                    continue
                child, role = entry
                if role == _STDIN:
                    self.pump_input(child)
                else:
                    self.pump_output(child, role)
            if self.exiting:
                self.reap()

    def spawn_and_signal(self):
        with self.lock:
            starting, self.starting = self.starting, deque()
            signals, self.signals = self.signals, deque()
        for child in starting:
            error = child.spawn()
            if error is not None:
                with self.lock:
                    del self.children[child.id]
                self.report_exit(child.id, None, error)
            else:
                with self.lock:
                    self.dirty.add(child)
        for child, signum in signals:
            if child.proc is not None and child.proc.returncode is None:
                try:  # noqa: SIM105 - contextlib is one import more for the relay
                    os.killpg(child.proc.pid, signum)
                except OSError:
                    pass

    def register(self):
        """Poll each dirty child's pipes for what it may do now (and close its stdin once its
        end was asked for, or its reader went away)."""
        with self.lock:
            dirty, self.dirty = self.dirty, set()
            wanted = []
            for child in dirty:
                if child.close_requested and not child.input and child.fds[_STDIN] >= 0:
                    self.unregister(child.fds[_STDIN])
                    child.close(_STDIN)
                wanted.extend((child, role, fd, mask) for role, fd, mask in child.masks())
        for child, role, fd, mask in wanted:
            if not mask:
                self.unregister(fd)  # poll() reports a hang-up even for no events: not at all
            elif fd in self.registered:
                self.poller.modify(fd, mask)
            else:
                self.poller.register(fd, mask)
                self.registered[fd] = (child, role)

    def unregister(self, fd):
        if self.registered.pop(fd, None) is not None:
            self.poller.unregister(fd)

    def pump_input(self, child):
        with self.lock:
            if child.fds[_STDIN] < 0:
                return
            ack = self.written(child, child.write_input())
            if not child.input:
                self.dirty.add(child)  # nothing to write: stop polling for room (or close)
        if ack:
            self.send(self.msg.CHILD_WRITTEN, child.id, self.encode(ack))

    def pump_output(self, child, role):
        fd = child.fds[role]
        with self.lock:
            size = min(child.credit, READ_SIZE)
        if size <= 0 or fd < 0:
            return
        try:
            data = os.read(fd, size)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        kind = self.msg.CHILD_STDOUT if role == _STDOUT else self.msg.CHILD_STDERR
        with self.lock:
            child.credit -= len(data)
            if not data:
                self.unregister(fd)
                child.close(role)
                child.ended[role] = True
                if role == _STDOUT:
                    self.exiting.append(child)
            elif not child.credit:
                self.dirty.add(child)
        self.send(kind, child.id, data)

    def reap(self):
        """Report the exit of the children whose stdout has ended and whose process has: what
        their stderr still holds first (a grandchild may keep it open for ever)."""
        for child in list(self.exiting):
            if child.proc.poll() is None:
                continue
            self.exiting.remove(child)
            if not child.ended[_STDERR]:
                self.pump_output(child, _STDERR)
                if not child.ended[_STDERR]:
                    with self.lock:
                        self.unregister(child.fds[_STDERR])
                        child.close(_STDERR)
                    self.send(self.msg.CHILD_STDERR, child.id, b"")
            with self.lock:
                self.unregister(child.fds[_STDIN])
                child.close(_STDIN)
                del self.children[child.id]
            self.report_exit(child.id, child.proc.returncode, None)

    def report_exit(self, child_id, status, error):
        self.send(self.msg.CHILD_EXIT, child_id, self.encode({"status": status, "error": error}))
