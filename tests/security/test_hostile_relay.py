"""A hostile relay can do no more than a hostile agent, and a hostile agent behind a relay
cannot freeze the relay or the controller.

The hostile relay is hostile_agent.py (scenario ``hostile_relay``) behind a real tunnel; the
tunnels behind it are real ``Local`` tunnels, whose commands it never runs. The hostile agent
behind a real relay (scenario ``unread``) answers the handshake and then reads nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability.probes import watch_rss

from chopsticks_nb import errors
from chopsticks_nb.group import Group
from chopsticks_nb.tunnel import Local
from security.hostile import HostileTunnel

#: What this process may gain while a hostile relay runs (it may make us hold one window of
#: output per tunnel behind it, 256 KiB, besides the usual).
BASE_GROWTH_MIB = 48


@pytest.fixture(scope="module")
def honest() -> Iterator[Group]:
    """Two real agents, one of them relayed, that must keep answering."""
    relay = Local("honest-relay")
    group = Group([Local("honest1"), Local("honest2", via=relay)])
    group.connect()
    try:
        yield group
    finally:
        group.close()
        relay.close()


@pytest.mark.parametrize(
    ("misdeed", "complaint"),
    [
        ("unstarted", "a frame for relayed command 6, which was never started"),
        ("overflow", "the relay passed on more output of behind-evil than it was given room"),
        ("oversized", "a CHILD_STDOUT frame of 262145 bytes exceeds the 262144-byte limit"),
        ("overack", "the relay acknowledged input for behind-evil that was never sent"),
        ("bad_exit", "malformed CHILD_EXIT field 'status': a str, not int or None"),
    ],
)
def test_a_relay_outside_the_protocol_ends_itself_and_its_tunnels(
    honest: Group, misdeed: str, complaint: str
) -> None:
    """Injects: a relay that answers the start of a tunnel's command with a frame outside the
    protocol. Asserts: the relay's connection ends with a ProtocolError naming it and saying
    what was wrong; the tunnel behind it fails to connect, naming the relay and the
    complaint; this process's memory stays bounded; the honest tunnels answer."""
    relay = HostileTunnel("evil-relay", "hostile_relay", misdeed=misdeed)
    behind = Local("behind-evil", via=relay, connect_timeout=20)
    try:
        with watch_rss() as peak, pytest.raises(errors.ConnectError) as info:
            behind.connect()
        assert info.value.host == "behind-evil"
        assert str(info.value).startswith("behind-evil: its relay evil-relay failed: ")
        assert complaint in str(info.value)
        assert peak.growth < BASE_GROWTH_MIB
        assert relay._conn is not None and not relay._conn.alive
        assert honest.call(os.getpid).ok
    finally:
        relay.close()
        behind.close()


def test_a_relay_cannot_make_the_controller_unpickle(honest: Group, tmp_path: Path) -> None:
    """Injects: a relay that forges the agent of the tunnel behind it: a valid handshake, then
    a pickle (whose loading would create a marker file) as the answer to its first call.
    Asserts: the marker never appears; the tunnel ends with a ProtocolError naming it (as a
    hostile agent's would), the relay itself is not blamed; the honest tunnels answer."""
    marker = tmp_path / "unpickled"
    relay = HostileTunnel("evil-relay", "hostile_relay", misdeed="forged", marker=str(marker))
    behind = Local("forged", via=relay, connect_timeout=20)
    try:
        assert behind.remote_info["hostname"] == "hostile"
        with pytest.raises(errors.ProtocolError) as info:
            behind.call(os.getpid)
        assert info.value.host == "forged" and "undecodable" in str(info.value)
        assert not marker.exists()
        assert relay._conn is not None and relay._conn.alive
        assert honest.call(os.getpid).ok
    finally:
        relay.close()  # first: the tunnel then ends at once (its relay would never say)
        behind.close()


def test_an_agent_that_stops_reading_stalls_only_itself(honest: Group, tmp_path: Path) -> None:
    """Injects: behind a real relay, an agent that answers the handshake and then never reads,
    sent a 20 MiB put. Asserts: the put waits (the relay holds at most a window of it, and
    this process at most a window and a chunk); the relay, an honest tunnel behind it and the
    honest group answer calls meanwhile; closing the tunnel fails the put."""
    source = tmp_path / "source"
    source.write_bytes(os.urandom(20 * 2**20))
    relay = Local("relay-d")
    deaf = HostileTunnel("deaf", "unread", seconds=60)
    deaf_behind = deaf.behind(relay)
    neighbour = Local("neighbour", via=relay)
    try:
        deaf_behind.connect()
        with watch_rss() as peak:
            put = deaf_behind.submit_put(str(source), str(tmp_path / "copy"))
            for _ in range(20):
                assert relay.call(os.getpid) > 0
                assert neighbour.call(os.getpid) > 0
            assert honest.call(os.getpid).ok
            assert not put.done()
        assert peak.growth < BASE_GROWTH_MIB
        deaf_behind.close()
        with pytest.raises(errors.ChopsticksError):
            put.result(timeout=20)
    finally:
        for tunnel in (deaf_behind, neighbour, relay):
            tunnel.close()
