"""fetch from a hostile remote: no file outside the template's directory, no wrong file kept.

The remote controls the bytes it sends and the size and SHA-1 it claims; host names come from
the user but may hold ``/`` or ``..``. A fetched file must arrive whole and verified, or the
destination keeps what it held before, and nothing is written anywhere else.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from chopsticks_nb import errors
from chopsticks_nb.group import Group
from chopsticks_nb.result import ErrorResult
from security.hostile import HostileTunnel

#: What the remote sends: made there from a seed (a command line cannot carry it). Several chunks.
SENT = {"random": 1, "size": 300_000}
DATA = random.Random(1).randbytes(300_000)
SHA1 = hashlib.sha1(DATA).hexdigest()


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) with its contents."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


LIES: dict[str, dict[str, Any]] = {
    "size-too-big": {"data": SENT, "size": len(DATA) + 1},
    "size-too-small": {"data": SENT, "size": len(DATA) - 1},
    "wrong-sha1": {"data": SENT, "sha1": "0" * 40},
    "truncated-data": {"data": {**SENT, "cut": 100_000}, "size": len(DATA), "sha1": SHA1},
    "extra-data": {"data": {**SENT, "suffix": b"more".hex()}, "size": len(DATA), "sha1": SHA1},
    "empty-data": {"data": "", "size": len(DATA), "sha1": SHA1},
}


@pytest.mark.parametrize("lie", list(LIES))
def test_a_lying_remote_leaves_the_old_file(tmp_path: Path, lie: str) -> None:
    """Injects: FETCH_DATA chunks then a RESULT whose size or SHA-1 does not match what was
    sent (too big, too small, wrong hash, truncated, extra or no data). Asserts: TransferError
    naming the host; the destination keeps its old contents; no temporary file is left; the
    tunnel stays usable for the next fetch."""
    dest = tmp_path / "dest"
    dest.write_bytes(b"old contents")
    tunnel = HostileTunnel("liar", "fetch_reply", **LIES[lie])
    try:
        for _ in range(2):  # twice: the first failure left the tunnel usable
            with pytest.raises(errors.TransferError, match=r"^liar: .*does not match"):
                tunnel.fetch("/remote/file", str(dest))
            assert tree(tmp_path) == {"dest": b"old contents"}
    finally:
        tunnel.close()


def test_a_malformed_transfer_result_is_a_protocol_error(tmp_path: Path) -> None:
    """Injects: the data, then a RESULT that is not a transfer record. Asserts: ProtocolError
    naming the host; the old file stays and no temporary file is left."""
    dest = tmp_path / "dest"
    dest.write_bytes(b"old contents")
    tunnel = HostileTunnel("liar", "fetch_reply", data=SENT, result=["not", "a", "dict"])
    with pytest.raises(errors.ProtocolError, match=r"^liar: malformed transfer result"):
        tunnel.fetch("/remote/file", str(dest))
    tunnel.close()
    assert tree(tmp_path) == {"dest": b"old contents"}


def test_group_fetch_keeps_each_hosts_file_whole_or_old(tmp_path: Path) -> None:
    """Injects: in one group fetch with a ``{host}`` template, two remotes that send true data
    and one that lies about the checksum. Asserts: the honest hosts' files are written inside
    the template's directory and verified; the liar's old file is untouched; nothing else
    exists anywhere under the test directory."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("good1", "good2", "liar"):
        (out / f"{name}.bin").write_bytes(b"old " + name.encode())
    group = Group(
        [
            HostileTunnel("good1", "fetch_reply", data=SENT),
            HostileTunnel("liar", "fetch_reply", data=SENT, sha1="1" * 40),
            HostileTunnel("good2", "fetch_reply", data=SENT),
        ]
    )
    try:
        result = group.fetch("/remote/file", str(out / "{host}.bin"), timeout=60)
    finally:
        group.close()
    assert result["good1"]["sha1sum"] == SHA1 and result["good2"]["sha1sum"] == SHA1
    assert isinstance(result["liar"], ErrorResult)
    assert isinstance(result["liar"].exception, errors.TransferError)
    assert tree(tmp_path) == {
        "out/good1.bin": DATA,
        "out/good2.bin": DATA,
        "out/liar.bin": b"old liar",
    }


@pytest.mark.parametrize("name", ["..", "../evil", "a/b", "x/../../y", "web1/..", "/abs"])
@pytest.mark.parametrize("template", ["{host}", "{host}/file", "pre-{host}.txt", "d/{host}.log"])
def test_host_names_cannot_climb_out_of_the_template(
    tmp_path: Path, name: str, template: str
) -> None:
    """Injects: a host name holding ``/`` or ``..`` in a group fetch with a ``{host}``
    template, beside an honest host. Asserts: ValueError before anything starts (no tunnel
    connects, no file or directory appears anywhere)."""
    base = tmp_path / "base"
    base.mkdir()
    group = Group(
        [HostileTunnel("ok", "fetch_reply", data=SENT), HostileTunnel(name, "fetch_reply")]
    )
    with pytest.raises(ValueError, match=r"cannot be used in a local path|leaves"):
        group.fetch("/remote/file", str(base / template))
    assert not any(t.connected for t in group)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["base"]


def test_odd_but_harmless_host_names_stay_inside(tmp_path: Path) -> None:
    """Control: names with dots, ``%``, ``:`` and ``@`` that are not path separators or
    ``..`` are fetched, each inside the template's directory."""
    base = tmp_path / "base"
    base.mkdir()
    names = ["...", "a..b", "%2e%2e", "user@host:22", "[::1]"]
    group = Group([HostileTunnel(name, "fetch_reply", data=SENT) for name in names])
    try:
        result = group.fetch("/remote/file", str(base / "{host}" / "copy"), timeout=60)
    finally:
        group.close()
    assert result.ok, result
    assert tree(tmp_path) == {f"base/{name}/copy": DATA for name in names}
