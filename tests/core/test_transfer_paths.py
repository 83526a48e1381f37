"""The paths users give to transfers: ``{host}`` in a group put's remote path, and errors that
name the user's path, never the temporary ``.part`` file beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chopsticks_nb.errors import TransferError
from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import Local


@pytest.fixture
def pair() -> Iterator[Group]:
    group = Group([Local("a"), Local("b")])
    try:
        yield group
    finally:
        group.close()


def test_put_puts_each_host_name_in_the_remote_path(pair: Group, tmp_path: Path) -> None:
    source = tmp_path / "app.ini"
    source.write_text("[app]\n")
    result = pair.put(source, str(tmp_path / "app-{host}.ini"))
    assert {h: v["remote_path"] for h, v in result.items()} == {
        "a": str(tmp_path / "app-a.ini"),
        "b": str(tmp_path / "app-b.ini"),
    }
    assert (tmp_path / "app-a.ini").read_text() == "[app]\n"
    assert not (tmp_path / "app-{host}.ini").exists()


@pytest.mark.parametrize(
    ("template", "message"),
    [("/tmp/{hostname}.ini", "must use only {host}"), ("/tmp/{0}.ini", "must use only {host}")],
)
def test_put_refuses_other_fields_before_anything_starts(
    pair: Group, tmp_path: Path, template: str, message: str
) -> None:
    source = tmp_path / "app.ini"
    source.write_text("")
    with pytest.raises(ValueError, match=message):
        pair.put(source, template)
    assert not any(t.connected for t in pair)


def test_a_put_that_cannot_write_names_the_users_path(pair: Group, tmp_path: Path) -> None:
    source = tmp_path / "app.ini"
    source.write_text("x")
    missing = tmp_path / "no-such-dir" / "app.ini"
    with pytest.raises(TransferError) as info:
        pair["a"].put(str(source), str(missing))
    assert f"No such file or directory: '{missing}'" in str(info.value)
    assert ".part" not in str(info.value)
    # Renaming onto a directory fails after the data arrived: the message names it, and the
    # temporary file is gone.
    target = tmp_path / "a-directory"
    target.mkdir()
    with pytest.raises(TransferError) as info:
        pair["a"].put(str(source), str(target))
    assert f"Is a directory: '{target}'" in str(info.value) and ".part" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-directory", "app.ini"]


def test_a_fetch_that_cannot_write_names_the_users_path(pair: Group, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "copy"
    result = pair.fetch("/etc/hostname", str(missing) + "-{host}")
    assert [error.msg for _, error in result.failures()] == [
        f"FileNotFoundError: [Errno 2] No such file or directory: '{missing}-{host}'"
        for host in ("a", "b")
    ]
