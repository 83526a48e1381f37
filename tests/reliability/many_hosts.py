"""Many real sshd hosts on loopback addresses, for the scale test and bench/bench_scale.py.

Host ``hNN`` is 127.0.0.(FIRST+NN-1), and past 127.0.0.254 on to 127.0.1.1 and up (all of
127/8 is on ``lo``), all on one free port. sshd takes at most 16
``ListenAddress`` lines, so every 16 hosts share one sshd process; each host is still a
distinct address with its own TCP connections, sessions and agents. The sshds daemonise (they
are not children of the caller) and are stopped by pid from their pid files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fixtures.sshd import client_defaults, client_key, free_port, host_entry, new_key, sshd_config
from fixtures.system import TEST_USER, ensure_user, port_accepts, run, wait_until

__all__ = ["ManyHosts", "start_many_hosts"]

SSHD = "/usr/sbin/sshd"
PER_SSHD = 16  # sshd refuses more ListenAddress lines
FIRST = 64  # 127.0.0.64 ..: clear of the sshd_hosts fixture (127.0.0.2-5)


@dataclass
class ManyHosts:
    base: Path
    config_path: Path
    port: int
    addresses: dict[str, str]
    pidfiles: list[Path] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.addresses)

    def stop(self) -> None:
        """Stop every sshd and remove the files (safe to call more than once)."""
        for pidfile in self.pidfiles:
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
        shutil.rmtree(self.base, ignore_errors=True)


def host_address(index: int) -> str:
    """The loopback address of host number ``index`` (from 0)."""
    n = FIRST + index
    if n <= 254:
        return f"127.0.0.{n}"
    n -= 255
    return f"127.0.{1 + n // 254}.{1 + n % 254}"


def start_many_hosts(count: int) -> ManyHosts:
    """Start ``count`` hosts (needs root, openssh-server; makes the test user if needed)."""
    ensure_user(TEST_USER)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="chopsticks-nb-many-"))
    base.chmod(0o755)
    addresses = {f"h{i + 1:02d}": host_address(i) for i in range(count)}
    port = free_port(list(addresses.values()), 2400)
    hosts = ManyHosts(base, base / "ssh_config", port, addresses)
    try:
        key, authorized = client_key(base)
        host_key = new_key(base / "hostkey")
        all_addresses = list(addresses.values())
        for first in range(0, count, PER_SSHD):
            directory = base / f"sshd{first // PER_SSHD}"
            directory.mkdir()
            config = directory / "sshd_config"
            config.write_text(
                sshd_config(
                    "tests/reliability/many_hosts.py",
                    port=port,
                    addresses=all_addresses[first : first + PER_SSHD],
                    host_key=host_key,
                    pidfile=directory / "sshd.pid",
                    authorized_keys=authorized,
                    sessions=200,
                    log_level="ERROR",
                )
            )
            hosts.pidfiles.append(directory / "sshd.pid")
            run([SSHD, "-f", config, "-E", directory / "sshd.log"], timeout=30)
        for address in all_addresses:
            wait_until(lambda a=address: port_accepts(a, port), timeout=10, what=f"sshd {address}")
        hosts.config_path.write_text(
            "".join(host_entry(n, a, port) for n, a in addresses.items())
            + client_defaults(TEST_USER, key, connect_timeout=20)
        )
    except BaseException:
        hosts.stop()
        raise
    return hosts
