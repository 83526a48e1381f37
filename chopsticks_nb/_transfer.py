"""put and fetch on the controller: streamed in large chunks, SHA-1 checked, renamed into place.

An upload is a producer the broker drives as the pipe drains, so memory does not grow with the
file; a download is written chunk by chunk to a temporary name beside its destination and
renamed only once size and checksum match what the agent read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from typing import Any, BinaryIO

from . import _agent
from ._agent import CHUNK_SIZE, TRANSFER_RESULT, Msg
from ._broker import BROKER
from ._connection import Connection
from ._requests import Operation
from .errors import ChopsticksError, TransferError


def _checked_result(value: object) -> dict[str, Any]:
    result: dict[str, Any] = _agent.check_shape(value, TRANSFER_RESULT, "transfer result")
    return result


class Upload(Operation):
    """One put: the file is read as the pipe drains, its checksum computed on the way."""

    def __init__(self, conn: Connection, source: BinaryIO, local_path: str) -> None:
        super().__init__(conn.host)
        self.conn = conn
        self.producing = False
        self.source = source
        self.local_path = local_path
        self.sha1 = hashlib.sha1()
        self.size = 0

    def produce(self) -> bool:
        if self.done or self.source.closed:
            return False
        chunk = self.source.read(CHUNK_SIZE)
        try:
            if chunk:
                self.sha1.update(chunk)
                self.size += len(chunk)
                self.conn.writer.send(Msg.PUT_DATA, self.req_id, chunk)
                return True
            end = {"size": self.size, "sha1": self.sha1.hexdigest()}
            self.conn.writer.send(Msg.PUT_CLOSE, self.req_id, _agent.encode(end))
        except ChopsticksError as exc:
            self.fail(exc)
        return False

    def on_result(self, value: object) -> None:
        result = _checked_result(value)
        if result["sha1sum"] != self.sha1.hexdigest() or result["size"] != self.size:
            self.fail(
                TransferError(
                    f"{result['remote_path']}: the remote checksum does not match", self.host
                )
            )
            return
        self.complete(value=dict(result, local_path=self.local_path))

    def on_sent(self, conn: Any) -> None:
        self.producing = True
        conn.writer.add_producer(self)  # it sends the file as the pipe drains, then closes it

    def close(self) -> None:
        self.source.close()

    def complete(self, *, value: Any = None, error: ChopsticksError | None = None) -> bool:
        if not self.producing:  # failed before its first frame went: no producer closes it
            self.source.close()
        return super().complete(value=value, error=error)

    def on_error(self, record: dict[str, Any]) -> None:
        self.fail(
            TransferError(f"put to the remote failed: {record['type']}: {record['msg']}", self.host)
        )


class Download(Operation):
    """One fetch: chunks go to a temporary file beside ``local_path``, renamed when verified."""

    def __init__(self, conn: Connection, local_path: str) -> None:
        super().__init__(conn.host)
        self.conn = conn
        self.local_path = local_path
        directory, name = os.path.split(local_path)
        try:
            self.fd, self.tmp = tempfile.mkstemp(
                dir=directory or ".", prefix=f".{name}.", suffix=".part"
            )
        except OSError as exc:  # name the user's path, not the temporary file's
            raise type(exc)(exc.errno, exc.strerror, local_path) from None
        self.sha1 = hashlib.sha1()
        self.size = 0

    def on_data(self, payload: memoryview) -> None:
        if self.fd < 0:
            return
        self.sha1.update(payload)
        self.size += len(payload)
        view = memoryview(payload)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self.conn.abandon(
                self, TransferError(f"cannot write {self.local_path}: {exc.strerror}", self.host)
            )

    def on_result(self, value: object) -> None:
        result = _checked_result(value)
        if result["size"] != self.size or result["sha1sum"] != self.sha1.hexdigest():
            self.fail(
                TransferError(
                    f"{result['remote_path']}: received data does not match its checksum",
                    self.host,
                )
            )
            return
        os.close(self.fd)
        self.fd = -1
        os.replace(self.tmp, self.local_path)
        self.complete(value=dict(result, local_path=self.local_path))

    def on_error(self, record: dict[str, Any]) -> None:
        self.fail(TransferError(f"fetch failed: {record['type']}: {record['msg']}", self.host))

    def fail(self, error: ChopsticksError) -> bool:
        self.discard()  # before the waiter wakes: a failed fetch leaves no file behind
        return super().fail(error)

    def discard(self) -> None:
        BROKER.run_and_wait(self._discard)  # the broker thread may be writing this file

    def _discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)


#: An operation and the kind and payload of its first frame, for Connection.run or .submit.
Request = tuple[Operation, int, bytes]


def put_request(conn: Connection, local_path: str, remote_path: str | None, mode: int) -> Request:
    source = open(local_path, "rb")  # noqa: SIM115 - closed by the producer, or on completion
    upload = Upload(conn, source, os.path.abspath(local_path))
    return upload, Msg.PUT_OPEN, _agent.encode({"path": remote_path, "mode": mode})


def fetch_request(conn: Connection, remote_path: str, local_path: str | None) -> Request:
    if local_path is None:
        fd, local_path = tempfile.mkstemp(prefix="chopsticks-fetch-")
        os.close(fd)
    download = Download(conn, os.path.abspath(local_path))
    return download, Msg.FETCH, _agent.encode({"path": remote_path})
