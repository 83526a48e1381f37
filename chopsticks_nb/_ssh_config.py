"""The hosts an OpenSSH client config names: its concrete ``Host`` entries, Includes followed.

Only names are read. When a tunnel connects, ssh reads the entry itself (``HostName``,
``User``, ``Port``, ``ProxyJump``...), so the library never has to understand those options.
The file is read as ssh 9 reads it:

- keywords in any case, ``Keyword value`` or ``Keyword=value``, ``#`` comments, and ssh's
  quoting (``Host "my host"``) and backslash escapes;
- ``Host a b c`` names three hosts; patterns (``*``, ``?``) and negations (``!name``) match
  hosts rather than name them, so they are left out, and so are names that ssh refuses as a
  destination (a leading ``-``, spaces, quotes, shell characters such as ``;`` or ``$``);
- ``Match`` starts a block whose conditions only ssh can evaluate: it names no host;
- ``Include`` reads other files in place: several paths per line, glob patterns expanded in
  lexical order, ``~`` expanded, relative paths taken from ``~/.ssh`` (ssh does so for every
  user config, a ``-F`` file included). An Include below a ``Host`` line is part of that block,
  and ssh applies the included entries only to names the block matches: only those are kept.
  Below a ``Match`` line, whose conditions cannot be checked here, the included names are all
  listed (ssh will apply them only where the Match holds).

A config that ssh itself would refuse (unbalanced quotes, ``Host`` with nothing after it, an
Include loop) raises :class:`SSHConfigError` naming the file and line.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import SSHConfigError

__all__ = [
    "DEFAULT_SSH_CONFIG",
    "HostEntry",
    "SSHConfigError",
    "ssh_config_entries",
    "ssh_config_hosts",
]

#: The user's own config, read when no path is given.
DEFAULT_SSH_CONFIG = "~/.ssh/config"
#: Where a relative Include path of a user config points (as ssh has it).
_USER_DIR = "~/.ssh"
#: How deep Includes may nest, as in OpenSSH (READCONF_MAX_DEPTH).
_MAX_DEPTH = 16
_KEYWORD = re.compile(r"[ \t]*([^ \t=]+)[ \t]*(?:=[ \t]*)?(.*)\Z")
_PATTERN_CHARS = frozenset("*?!")
# ssh refuses destinations that start with "-" or hold any of these (or spaces, control chars).
_NOT_IN_DESTINATIONS = frozenset("'`\"$\\;&<>|(){},")


def ssh_config_hosts(pattern: str = "*", path: str | os.PathLike[str] | None = None) -> list[str]:
    """The host names an ssh config defines that match ``pattern``, in file order, each once.

    ``path`` is the config file (default ``~/.ssh/config``; ``~`` is expanded); ``pattern`` is
    a glob (``web*``, ``db-?``, ``*.lan``) compared without regard to case, as ssh compares host
    names. Raises ``FileNotFoundError`` when the file itself does not exist (an Include that
    matches nothing is skipped, as ssh skips it), :class:`SSHConfigError` for a config that ssh
    would refuse.
    """
    return [entry.name for entry in ssh_config_entries(pattern, path)]


@dataclass(frozen=True)
class HostEntry:
    """A host name an ssh config defines, and where: the file and line of its first ``Host``."""

    name: str
    path: str
    line: int


def ssh_config_entries(
    pattern: str = "*", path: str | os.PathLike[str] | None = None
) -> list[HostEntry]:
    """As :func:`ssh_config_hosts`, each name with the file and line that first names it."""
    top = os.path.abspath(
        os.path.expanduser(os.fspath(DEFAULT_SSH_CONFIG if path is None else path))
    )
    with open(top, encoding="utf-8", errors="replace") as config:
        text = config.read()
    reader = _Reader()
    reader.read(top, text, chain=(), scopes=())
    wanted = pattern.lower()
    return [
        entry for entry in reader.found.values() if fnmatch.fnmatchcase(entry.name.lower(), wanted)
    ]


@dataclass(frozen=True)
class _Line:
    path: str
    number: int
    keyword: str  # lower case
    words: list[str]


class _Reader:
    """Collects names from a file and the files it includes, in the order ssh reads them."""

    def __init__(self) -> None:
        self.found: dict[str, HostEntry] = {}

    def read(
        self,
        path: str,
        text: str,
        *,
        chain: tuple[str, ...],
        scopes: tuple[tuple[str, ...], ...],
    ) -> None:
        """``chain``: the files including this one; ``scopes``: the Host patterns they were
        included under, each of which a name must match to take effect."""
        chain = (*chain, os.path.realpath(path))
        block: tuple[str, ...] | None = None  # the current Host block's patterns; None: none
        for number, raw in enumerate(text.split("\n"), start=1):  # ssh counts "\n" only
            line = _parse(path, number, raw)
            if line is None:
                continue
            if line.keyword == "host":
                block = tuple(line.words)
                for name in block:
                    if _is_destination(name) and _in_scopes(name, scopes):
                        self.found.setdefault(name, HostEntry(name, path, number))
            elif line.keyword == "match":
                block = None
            elif line.keyword == "include":
                inner = scopes if block is None else (*scopes, block)
                for included in _included_files(line):
                    self.include(line, included, chain=chain, scopes=inner)

    def include(
        self,
        line: _Line,
        path: str,
        *,
        chain: tuple[str, ...],
        scopes: tuple[tuple[str, ...], ...],
    ) -> None:
        real = os.path.realpath(path)
        if real in chain:
            raise SSHConfigError(
                f"Include loop: {path} is already being read", line.path, line.number
            )
        if len(chain) > _MAX_DEPTH:  # the top file is depth 0
            raise SSHConfigError(
                f"Includes nest more than {_MAX_DEPTH} deep (ssh's limit)",
                line.path,
                line.number,
            )
        try:
            with open(path, encoding="utf-8", errors="replace") as config:
                text = config.read()
        except FileNotFoundError:
            return  # removed since the glob saw it: ssh skips missing files too
        except OSError as exc:
            raise SSHConfigError(
                f"cannot read {path}: {exc.strerror}", line.path, line.number
            ) from exc
        self.read(path, text, chain=chain, scopes=scopes)


def _parse(path: str, number: int, raw: str) -> _Line | None:
    """The keyword and words of one line, or None for a blank line or a comment."""
    found = _KEYWORD.match(raw.rstrip(" \t\r\n\f"))
    if found is None or found.group(1).startswith("#"):
        return None
    keyword = found.group(1).lower()
    if keyword not in ("host", "match", "include"):
        return None  # ssh's business: the library only lists names
    words = _split_words(found.group(2))
    if words is None:
        raise SSHConfigError("unbalanced quotes", path, number)
    if not words:
        raise SSHConfigError(f"{found.group(1)} with nothing after it", path, number)
    if "" in words:
        raise SSHConfigError(f"an empty argument to {found.group(1)}", path, number)
    return _Line(path, number, keyword, words)


def _split_words(text: str) -> list[str] | None:
    """Split arguments as ssh does: spaces or tabs apart, quotes grouping, ``\\`` escaping
    quotes, backslashes and (outside quotes) spaces, ``#`` at a word's start ending the line.
    None when a quote is left open."""
    words: list[str] = []
    i, end = 0, len(text)
    while i < end:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == "#":
            break
        word: list[str] = []
        quote = ""
        while i < end:
            char = text[i]
            following = text[i + 1] if i + 1 < end else ""
            if char == "\\" and (following in ("'", '"', "\\") or (following == " " and not quote)):
                word.append(following)
                i += 2
                continue
            if not quote and char in " \t":
                break
            if not quote and char in "'\"":
                quote = char
            elif quote and char == quote:
                quote = ""
            else:
                word.append(char)
            i += 1
        if quote:
            return None
        words.append("".join(word))
    return words


def _included_files(line: _Line) -> list[str]:
    files: list[str] = []
    for word in line.words:
        if not word.startswith("~") and not os.path.isabs(word):
            word = os.path.join(_USER_DIR, word)
        files += sorted(glob.glob(os.path.expanduser(word)))
    return [path for path in files if not os.path.isdir(path)]


def _is_destination(name: str) -> bool:
    """Whether ``name`` names one host that ssh accepts as a destination (not a pattern)."""
    return not (
        name.startswith("-")
        or _PATTERN_CHARS.intersection(name)
        or _NOT_IN_DESTINATIONS.intersection(name)
        or any(char.isspace() or not char.isprintable() for char in name)
    )


def _in_scopes(name: str, scopes: Sequence[tuple[str, ...]]) -> bool:
    return all(_matches_host_patterns(name, patterns) for patterns in scopes)


def _matches_host_patterns(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether ssh would apply a ``Host`` line with ``patterns`` to ``name``: one pattern
    matches and no negated one does (``*`` and ``?`` only; no case)."""
    host = name.lower()
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _host_glob(pattern[1:] if negated else pattern).fullmatch(host):
            if negated:
                return False
            matched = True
    return matched


def _host_glob(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.compile("".join(parts), re.DOTALL)
