"""A slow link for ssh: a ProxyCommand relay adding a fixed delay each way and a rate cap.

Usage (in an ssh_config, or ``ssh -o ProxyCommand=...``)::

    ProxyCommand python3 -S delay_proxy.py HOST PORT --delay 0.025 [--rate BYTES_PER_S]

It connects to HOST:PORT and relays ssh's stdin to the socket and the socket to ssh's stdout,
as a link with one-way latency ``delay`` would (``tc netem`` is not available on this machine):

* every chunk is delivered ``delay`` seconds after it left, in order, whatever its size: a
  stream, not datagrams;
* with ``--rate``, each direction is a serialiser (a token bucket without burst): a chunk leaves
  only when the one before it has, after ``size / rate`` seconds on the wire. Chunks are cut to
  at most 16 KiB first, so that a large read is not delivered at once;
* what a direction holds (sent but not yet acknowledged) is bounded by ``--window`` bytes, and
  a chunk's room is given back ``delay`` after its delivery, when the acknowledgment would
  reach the sender: a long fat link's TCP window (the default, 4 MiB, is more than 100 Mbit/s
  x 50 ms needs);
* the TCP handshake costs its round trip: the connection to HOST:PORT opens ``delay`` after the
  start (the SYN's way) and ssh's first bytes leave ``2 * delay`` after it (after the SYN-ACK).

``--log FILE`` appends a line per chunk delivered: seconds since the start, ``>`` (towards
HOST) or ``<`` (towards ssh), bytes. Standard library only.
"""

import argparse
import contextlib
import heapq
import os
import selectors
import socket
import sys
import time

PIECE = 16 * 1024
READ = 64 * 1024


class Direction:
    """One way of the link: bytes read from ``src`` reach ``dst`` ``delay`` later."""

    def __init__(self, name, src, dst, delay, rate, window, departs, log):
        self.name = name
        self.src = src
        self.dst = dst
        self.delay = delay
        self.rate = rate
        self.window = window
        self.log = log
        self.link_free = departs  # when the serialiser can take the next chunk
        self.queue = []  # [deliver_at, bytes or None (the end)], in order
        self.held = 0  # bytes sent and not yet acknowledged
        self.eof = False  # src said so
        self.done = False  # the end was delivered

    def wants_input(self):
        return not self.eof and self.held < self.window

    def receive(self, data, now):
        """``data`` left the sender at ``now`` (None: the end of the stream)."""
        if data is None:
            self.eof = True
            self.queue.append([max(now, self.link_free) + self.delay, None])
            return
        self.held += len(data)
        step = PIECE if self.rate else len(data)
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            leaves = max(now, self.link_free)
            if self.rate:
                leaves += len(piece) / self.rate
            self.link_free = leaves
            self.queue.append([leaves + self.delay, piece])

    def due(self, now):
        return bool(self.queue) and self.queue[0][0] <= now

    def next_time(self):
        return self.queue[0][0] if self.queue else None


class Relay:
    def __init__(self, sock, delay, rate, window, log, start):
        self.sock = sock
        self.start = start
        self.log = log
        self.sel = selectors.DefaultSelector()
        self.acks = []  # (time, direction index, bytes): room given back to a direction
        stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
        for fd in (stdin, stdout, sock.fileno()):
            os.set_blocking(fd, False)
        self.ways = [
            Direction(">", stdin, sock.fileno(), delay, rate, window, start + 2 * delay, log),
            Direction("<", sock.fileno(), stdout, delay, rate, window, start + delay, log),
        ]
        self.delay = delay

    def run(self):
        while not all(way.done for way in self.ways):
            now = time.monotonic()
            self.release_acks(now)
            for way in self.ways:
                self.deliver(way, now)
            self.wait(time.monotonic())

    def release_acks(self, now):
        while self.acks and self.acks[0][0] <= now:
            _, index, size = heapq.heappop(self.acks)
            self.ways[index].held -= size

    def deliver(self, way, now):
        while way.due(now) and not way.done:
            item = way.queue[0]
            data = item[1]
            if data is None:
                self.end(way)
                way.queue.pop(0)
                way.done = True
                return
            try:
                written = os.write(way.dst, data)
            except BlockingIOError:
                return
            except OSError:  # the reader went away: nothing more can arrive there
                way.queue = []
                way.done = True
                return
            if self.log is not None:
                self.log.write(f"{now - self.start:.6f} {way.name} {written}\n")
            if written < len(data):
                item[1] = data[written:]
            else:
                way.queue.pop(0)
            index = self.ways.index(way)
            heapq.heappush(self.acks, (now + self.delay, index, written))

    def end(self, way):
        if way.dst == self.sock.fileno():
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
        else:
            os.close(way.dst)

    def wait(self, now):
        wanted = {}
        for way in self.ways:
            if way.wants_input():
                wanted[way.src] = wanted.get(way.src, 0) | selectors.EVENT_READ
            if way.due(now) and not way.done:
                wanted[way.dst] = wanted.get(way.dst, 0) | selectors.EVENT_WRITE
        times = [t for t in (way.next_time() for way in self.ways) if t is not None]
        times += [self.acks[0][0]] if self.acks else []
        timeout = max(0.0, min(times) - now) if times else None
        for fd in list(self.sel.get_map() or {}):
            self.sel.unregister(fd)
        for fd, events in wanted.items():
            self.sel.register(fd, events)
        if not wanted and timeout is None:
            return
        if not wanted:
            time.sleep(timeout)
            return
        for key, events in self.sel.select(timeout):
            if events & selectors.EVENT_READ:
                self.read(key.fd)

    def read(self, fd):
        now = time.monotonic()
        for way in self.ways:
            if way.src != fd or not way.wants_input():
                continue
            try:
                data = os.read(fd, min(READ, way.window - way.held))
            except BlockingIOError:
                return
            except OSError:
                data = b""
            way.receive(data or None, now)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--delay", type=float, default=0.025, help="seconds each way")
    parser.add_argument("--rate", type=float, default=0, help="bytes per second each way")
    parser.add_argument("--window", type=int, default=4 << 20, help="bytes in flight each way")
    parser.add_argument("--log", help="append a line per chunk delivered to this file")
    args = parser.parse_args()
    start = time.monotonic()
    time.sleep(args.delay)  # the SYN's way: the server accepts (and may speak) only then
    sock = socket.create_connection((args.host, args.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    log = open(args.log, "a", buffering=1) if args.log else None  # noqa: SIM115
    try:
        Relay(sock, args.delay, args.rate, args.window, log, start).run()
    finally:
        sock.close()
        if log is not None:
            log.close()


if __name__ == "__main__":
    main()
