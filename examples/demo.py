"""chopsticks_nb in one screen: four local "hosts", a few calls on each, a table of results.

Run it with ``scripts/demo.sh`` (sets up .venv first) or ``.venv/bin/python examples/demo.py``.
Swap ``Local`` for ``SSHTunnel``, ``Sudo``, ``Docker`` or ``Podman`` to reach real machines.
"""

from __future__ import annotations

import os
import sys

from chopsticks_nb import facts
from chopsticks_nb.group import ErrorResult, Group, GroupResult
from chopsticks_nb.tunnel import Local


def greet(greeting: str) -> str:
    """Defined in this script (``__main__``), so it travels to each host as source."""
    import platform

    return f"{greeting} from {platform.python_implementation()} pid {os.getpid()}"


def cell(value: object) -> str:
    if isinstance(value, ErrorResult):
        return f"ERROR: {value}"
    return str(value)


def print_table(hosts: list[str], columns: dict[str, GroupResult]) -> None:
    rows = [["host", *columns]] + [
        [host, *(cell(result[host]) for result in columns.values())] for host in hosts
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))


def main() -> int:
    hosts = [f"local-{n}" for n in range(1, 5)]
    group = Group([Local(name) for name in hosts])
    try:
        columns = {
            "hostname": group.call(facts.hostname),
            "python": group.call(facts.python_version),
            "pid": group.call(os.getpid),
            "greet('hello')": group.call(greet, "hello"),
        }
    finally:
        group.close()
    print(f"controller pid {os.getpid()}; each host is its own Python process:\n")
    print_table(hosts, columns)
    failed = any(isinstance(v, ErrorResult) for r in columns.values() for v in r.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
