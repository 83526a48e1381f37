"""Shared SSH connections (OpenSSH's ControlMaster): where their sockets live, and ssh's options.

A master connection listens on a Unix socket, and whoever can reach that socket can run commands
as the master's login: the directory holding it must be the user's alone (a directory, not a
link, owned by the user, mode 700). The first that can be made so is used:
``$XDG_RUNTIME_DIR/chopsticks_nb`` (a per-login directory only the user reads),
``~/.ssh/chopsticks_nb`` (if ``~/.ssh`` exists), ``$TMPDIR/chopsticks_nb-UID``.

The socket is named ``%C`` by ssh (40 hex digits hashing the local host name, the destination,
port and user), and ssh first binds it under a temporary name 17 characters longer. A socket
path has at most 107 bytes on Linux, so a directory longer than 49 characters is passed over.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile

__all__ = ["MAX_DIRECTORY_LENGTH", "options", "socket_directory", "socket_directory_candidates"]

#: 107 bytes of sun_path, less "/", the 40 digits of %C and ssh's temporary ".XXXXXXXXXXXXXXXX"
MAX_DIRECTORY_LENGTH = 107 - 1 - 40 - 17
#: Characters a directory may hold: ssh reads ControlPath as a config value (spaces and quotes
#: would split or end it, "%" starts a token).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+@-]+\Z")


def socket_directory_candidates() -> list[str]:
    """Where a socket directory is looked for, in order of preference."""
    candidates = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        candidates.append(os.path.join(runtime, "chopsticks_nb"))
    home_ssh = os.path.expanduser("~/.ssh")
    if os.path.isabs(home_ssh):
        candidates.append(os.path.join(home_ssh, "chopsticks_nb"))
    candidates.append(os.path.join(tempfile.gettempdir(), f"chopsticks_nb-{os.geteuid()}"))
    return candidates


def socket_directory() -> str | None:
    """A directory private to this user for master sockets (made if needed), or None."""
    for candidate in socket_directory_candidates():
        usable = len(candidate) <= MAX_DIRECTORY_LENGTH and _PLAIN_PATH.match(candidate)
        if usable and _make_private(candidate):
            return candidate
    return None


def _make_private(path: str) -> bool:
    """Whether ``path`` is (now) a directory of this user's that only this user can enter."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False  # no such parent (~/.ssh missing), read-only, ...
    try:
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            return False  # a link, a file, or someone else's: never use it
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(path, 0o700)  # ours (the umask may have narrowed or widened it)
    except OSError:
        return False
    return True


def options(directory: str, persist: int) -> list[str]:
    """ssh's options to share one connection per destination through ``directory``.

    ``ControlMaster=auto``: use the master if one runs, else become it; ``ControlPersist``: the
    master stays up ``persist`` seconds after its last session ends (it then outlives the
    process that started it, so a later process reconnects in one round trip).
    """
    return [
        "-o", "ControlMaster=auto",
        "-o", f"ControlPath={directory}/%C",
        "-o", f"ControlPersist={persist}",
    ]  # fmt: skip
