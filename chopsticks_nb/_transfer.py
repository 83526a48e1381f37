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
import threading
from typing import Any, BinaryIO

from . import _agent
from ._agent import TRANSFER_RESULT, Msg
from ._bounded import escape_controls, exception_text, short_text
from ._connection import Connection
from ._requests import Operation
from .errors import ChopsticksError, TransferError


def _checked_result(value: object) -> dict[str, Any]:
    result: dict[str, Any] = _agent.check_shape(value, TRANSFER_RESULT, "transfer result")
    return result


def check_max_size(max_size: int | None) -> None:
    """Refuse a fetch's ``max_size`` that is not None or a number of bytes (ValueError)."""
    if max_size is not None and (type(max_size) is not int or max_size < 0):
        raise ValueError(
            f"max_size must be None or a number of bytes (0 or more), not {max_size!r}"
        )


def _remote_text(text: str) -> str:
    """Text the remote sent (a path, a message), as a message may show it: short, escaped."""
    return escape_controls(short_text(text, 500))


def _remote_error(record: dict[str, Any]) -> str:
    return f"{_remote_text(record['type'])}: {_remote_text(record['msg'])}"


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
        try:
            chunk = self.source.read(self.conn.writer.chunk_size)
        except Exception as exc:  # an I/O error: this put fails (and its remote file goes)
            message = f"cannot read {self.local_path}: {exception_text(exc)}"
            self.conn.abandon(self, TransferError(message, self.host))
            return False
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
            remote = _remote_text(result["remote_path"])
            self.fail(TransferError(f"{remote}: the remote checksum does not match", self.host))
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
        self.fail(TransferError(f"put to the remote failed: {_remote_error(record)}", self.host))


class Download(Operation):
    """One fetch: chunks go to a temporary file beside ``local_path``, renamed when verified.

    More than ``max_size`` bytes (None: no limit) stops the fetch. The file is written by the
    thread reading the connection and may be discarded by another (a cancel, a timeout): a
    lock keeps the two apart, so that no write goes to a descriptor closed meanwhile.
    """

    def __init__(
        self,
        conn: Connection,
        local_path: str,
        max_size: int | None = None,
        *,
        placeholder: bool = False,
    ) -> None:
        super().__init__(conn.host)
        self.conn = conn
        self.local_path = local_path
        self.max_size = max_size
        #: ``local_path`` is an empty file made for this fetch: removed if it fails
        self.placeholder = placeholder
        if os.path.isdir(local_path):
            raise TransferError(f"cannot fetch to {local_path}: it is a directory", self.host)
        self._file_lock = threading.Lock()
        # The agent's own way of naming it: unique, beside the target, short enough for a
        # file name of up to 255 bytes.
        try:
            self.fd, self.tmp = _agent._create_part_file(local_path)
        except OSError as exc:  # name the user's path, not the temporary file's
            raise type(exc)(exc.errno, exc.strerror, local_path) from None
        self.sha1 = hashlib.sha1()
        self.size = 0

    def on_data(self, payload: memoryview) -> None:
        if self.max_size is not None and self.size + len(payload) > self.max_size:
            message = f"the file is larger than max_size ({self.max_size} bytes): not kept"
            self.conn.abandon(self, TransferError(message, self.host))
            return
        with self._file_lock:
            if self.fd < 0:
                return
            self.sha1.update(payload)
            self.size += len(payload)
            view = memoryview(payload)
            try:
                while view:
                    view = view[os.write(self.fd, view) :]
                return
            except OSError as exc:
                error = TransferError(f"cannot write {self.local_path}: {exc.strerror}", self.host)
        self.conn.abandon(self, error)

    def on_result(self, value: object) -> None:
        result = _checked_result(value)
        if result["size"] != self.size or result["sha1sum"] != self.sha1.hexdigest():
            remote = _remote_text(result["remote_path"])
            self.fail(
                TransferError(f"{remote}: received data does not match its checksum", self.host)
            )
            return
        with self._file_lock:
            error = self._move_into_place()
        if error is not None:
            self.fail(error)
            return
        self.complete(value=dict(result, local_path=self.local_path))

    def _move_into_place(self) -> TransferError | None:
        if self.fd < 0:
            return TransferError("the fetch was discarded", self.host)
        os.close(self.fd)
        self.fd = -1
        try:
            os.replace(self.tmp, self.local_path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            return TransferError(f"cannot write {self.local_path}: {exc.strerror}", self.host)
        return None

    def on_error(self, record: dict[str, Any]) -> None:
        self.fail(TransferError(f"fetch failed: {_remote_error(record)}", self.host))

    def fail(self, error: ChopsticksError) -> bool:
        self.discard()  # before the waiter wakes: a failed fetch leaves no file behind
        if self.placeholder and not self.done:
            with contextlib.suppress(OSError):
                os.unlink(self.local_path)
        return super().fail(error)

    def discard(self) -> None:
        with self._file_lock:
            if self.fd >= 0:
                fd, self.fd = self.fd, -1
                with contextlib.suppress(OSError):
                    os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(self.tmp)


#: An operation and the kind and payload of its first frame, for Connection.run or .submit.
Request = tuple[Operation, int, bytes]


def put_request(conn: Connection, local_path: str, remote_path: str | None, mode: int) -> Request:
    source = open(local_path, "rb")  # noqa: SIM115 - closed by the producer, or on completion
    upload = Upload(conn, source, os.path.abspath(local_path))
    return upload, Msg.PUT_OPEN, _agent.encode({"path": remote_path, "mode": mode})


def fetch_request(
    conn: Connection, remote_path: str, local_path: str | None, max_size: int | None = None
) -> Request:
    placeholder = local_path is None
    if local_path is None:
        fd, local_path = tempfile.mkstemp(prefix="chopsticks-fetch-")
        os.close(fd)
    download = Download(conn, os.path.abspath(local_path), max_size, placeholder=placeholder)
    return download, Msg.FETCH, _agent.encode({"path": remote_path})
