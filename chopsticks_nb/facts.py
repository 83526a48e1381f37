"""Facts: small functions that describe the host they run on, to call remotely.

    from chopsticks_nb.facts import ip, memory
    group.call(ip)        # GroupResult: host -> "192.168.10.5"
    tunnel.call(memory)   # {"total": 8271659008, "available": 5912276992}

They run on the remote side, which imports this module through the tunnel's import hook: it uses
only the standard library and stays valid on the oldest remote Python supported (3.6), so its
type hints are strings, never evaluated. Values are plain str, int, float, list, tuple and dict,
which the codec carries. A fact that the remote platform cannot answer raises
:class:`FactUnavailable`. ``ip``, ``python_version`` and ``python_executable`` are chopsticks
1.0's, with its return shapes (docs/migrating.md lists where they differ).
"""

import os
import platform
import shutil
import socket
import subprocess
import sys
import time

__all__ = [
    "FactUnavailable",
    "cpu_count",
    "disk_usage",
    "hostname",
    "ip",
    "load_average",
    "memory",
    "os_release",
    "parse_os_release",
    "python_executable",
    "python_version",
    "uname",
    "uptime",
]

_OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")


class FactUnavailable(RuntimeError):
    """This platform cannot answer the fact asked for."""


def ip() -> str:
    """The address this host uses for outgoing traffic (IPv4 if it has an IPv4 route).

    Without any route (an isolated container, say), the address its host name resolves to;
    without that either, FactUnavailable (chopsticks 1.0 returned None).
    """
    probes = ((socket.AF_INET, ("192.0.2.1", 9)), (socket.AF_INET6, ("2001:db8::1", 9)))
    for family, address in probes:
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError:
            continue
        try:
            sock.connect(address)  # a UDP connect sends nothing: it only chooses a route
            found = str(sock.getsockname()[0])
        except OSError:
            continue
        finally:
            sock.close()
        if found not in ("0.0.0.0", "::"):
            return found
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError as exc:
        raise FactUnavailable(f"no route and no address for the host name: {exc}") from None


def hostname() -> str:
    """The host's name, as the host itself knows it."""
    return socket.gethostname()


def python_version(short: bool = False) -> "list[int | str]":
    """The remote Python's version as a list: ``[3, 11, 7, 'final', 0]``, or ``[3, 11]`` if
    ``short``. Lists, as chopsticks 1.0 gave them: ``tuple(python_version(short=True)) >= (3, 8)``
    compares versions."""
    if short:
        return list(sys.version_info[:2])
    return list(sys.version_info)


def python_executable() -> str:
    """The path of the remote Python interpreter (FactUnavailable rather than "" if unknown)."""
    if not sys.executable:
        raise FactUnavailable("this Python does not know its executable's path")
    return sys.executable


def uname() -> "dict[str, str]":
    """The kernel: ``system``, ``node``, ``release``, ``version`` and ``machine``."""
    info = platform.uname()
    return {
        "system": info[0],
        "node": info[1],
        "release": info[2],
        "version": info[3],
        "machine": info[4],
    }


def parse_os_release(text: str) -> "dict[str, str]":
    """The variables of an os-release(5) file, unquoted."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
            for escaped in ("\\\\", '\\"', "\\'", "\\$", "\\`"):
                value = value.replace(escaped, escaped[1])
        values[key.strip()] = value
    return values


def os_release() -> "dict[str, str]":
    """The operating system as os-release(5) describes it: ``ID``, ``VERSION_ID``, ``PRETTY_NAME``.

    On macOS, built from the system version (``ID`` is ``"macos"``).
    """
    for path in _OS_RELEASE_FILES:
        try:
            with open(path) as f:
                return parse_os_release(f.read())
        except OSError:
            continue
    if sys.platform == "darwin":
        version = platform.mac_ver()[0]
        return {
            "ID": "macos",
            "NAME": "macOS",
            "VERSION_ID": version,
            "PRETTY_NAME": f"macOS {version}".strip(),
        }
    raise FactUnavailable(f"no os-release file on this host ({sys.platform})")


def cpu_count() -> int:
    """The number of CPUs this process may run on (its affinity mask, where there is one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    count = os.cpu_count()
    if not count:
        raise FactUnavailable("the number of CPUs is unknown here")
    return count


def _meminfo() -> "dict[str, int]":
    values: dict[str, int] = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            fields = rest.split()
            if fields and fields[0].isdigit():
                scale = 1024 if fields[1:2] == ["kB"] else 1
                values[key] = int(fields[0]) * scale
    return values


def _sysctl(name: str) -> str:
    try:
        output = subprocess.check_output(["sysctl", "-n", name], stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise FactUnavailable(f"sysctl {name} failed: {exc}") from None
    return output.decode("ascii", "replace").strip()


def memory() -> "dict[str, int | None]":
    """Physical memory in bytes: ``total``, and ``available`` for new work without swapping."""
    try:
        info = _meminfo()
    except OSError:
        info = {}
    if "MemTotal" in info:
        available = info.get("MemAvailable")
        if available is None:  # kernels before 3.14
            available = info.get("MemFree", 0) + info.get("Buffers", 0) + info.get("Cached", 0)
        return {"total": info["MemTotal"], "available": available}
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * page
    except (ValueError, OSError, AttributeError):
        raise FactUnavailable(f"memory size is unknown on {sys.platform}") from None
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * page
    except (ValueError, OSError, AttributeError):  # macOS: no such figure
        available = None
    return {"total": total, "available": available}


def disk_usage(path: str = "/") -> "dict[str, str | int]":
    """Space on the file system holding ``path``, in bytes: ``total``, ``used`` and ``free``."""
    usage = shutil.disk_usage(path)
    return {"path": path, "total": usage.total, "used": usage.used, "free": usage.free}


def load_average() -> "tuple[float, float, float]":
    """The 1, 5 and 15 minute load averages."""
    try:
        one, five, fifteen = os.getloadavg()
    except (OSError, AttributeError):
        raise FactUnavailable(f"no load average on {sys.platform}") from None
    return (one, five, fifteen)


def uptime() -> float:
    """Seconds since the host booted."""
    try:
        with open("/proc/uptime") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is not None:
        return time.clock_gettime(boottime)
    if sys.platform == "darwin" or "bsd" in sys.platform:
        # "{ sec = 1700000000, usec = 0 } Tue Nov 14 ..."
        text = _sysctl("kern.boottime")
        try:
            booted = int(text.split("sec =", 1)[1].split(",", 1)[0])
        except (IndexError, ValueError):
            raise FactUnavailable(f"cannot read kern.boottime: {text!r}") from None
        return time.time() - booted
    raise FactUnavailable(f"uptime is unknown on {sys.platform}")
