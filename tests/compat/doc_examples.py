"""How the compat tests run the chopsticks 1.0 documentation's code examples: quoted, then ported.

Each test quotes an example as the original documentation prints it and runs it with two kinds
of change, both visible in the test:

- the import: the module ``chopsticks`` becomes ``chopsticks_nb`` (only as a module: a host
  name such as ``www.chopsticks.io`` is left alone);
- the test's *substitutions*, exact ``old -> new`` replacements for what cannot exist on a test
  machine (Docker Hub images, ``/srv`` paths, services). Each must occur in the example.

Host names are not substituted: the test ssh_config maps every host name the documentation uses
onto the loopback sshds (conftest.py), as a user's own ``~/.ssh/config`` would.

An example runs as a script's ``__main__`` code, with its source in ``linecache`` as a script's
or a notebook cell's would be, so the functions it defines travel to hosts as source.
"""

from __future__ import annotations

import ast
import builtins
import itertools
import linecache
import re
import textwrap
from collections.abc import Mapping
from typing import Any

__all__ = ["Examples", "port"]

# "chopsticks" as a module: not inside a dotted name, a string's word or a path.
_MODULE = re.compile(r"(?<![\w.'\"/-])chopsticks(?=[\s.])")
_numbers = itertools.count(1)


def port(example: str, substitutions: Mapping[str, str] | None = None) -> str:
    """``example`` with ``chopsticks`` imports renamed and ``substitutions`` made."""
    source = _MODULE.sub("chopsticks_nb", textwrap.dedent(example).strip("\n") + "\n")
    for old, new in (substitutions or {}).items():
        if old not in source:
            raise AssertionError(f"substitution {old!r} does not occur in the example")
        source = source.replace(old, new)
    return source


class Examples:
    """Runs ported examples; :meth:`close` closes every tunnel and group they left open."""

    def __init__(self) -> None:
        self.namespaces: list[dict[str, Any]] = []
        self.filenames: list[str] = []

    def run(
        self,
        example: str,
        substitutions: Mapping[str, str] | None = None,
        namespace: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Port and run ``example``; its namespace (pass one to continue an earlier example).

        The value of a last line that is an expression is kept in the namespace as ``_``."""
        source = port(example, substitutions)
        filename = f"<chopsticks 1.0 docs example {next(_numbers)}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        self.filenames.append(filename)
        if namespace is None:
            namespace = {"__name__": "__main__", "__builtins__": builtins}
            self.namespaces.append(namespace)
        tree = ast.parse(source, filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):  # kept, as a notebook keeps it
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), namespace)
        if last is not None:
            namespace["_"] = eval(compile(last, filename, "eval"), namespace)
        return namespace

    def close(self) -> None:
        from chopsticks_nb.group import Group
        from chopsticks_nb.tunnel import BaseTunnel

        for namespace in self.namespaces:
            for value in list(namespace.values()):
                if isinstance(value, (BaseTunnel, Group)):
                    value.close()
        for filename in self.filenames:
            linecache.cache.pop(filename, None)
